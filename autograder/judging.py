"""Run one question's test cases against an environment and score them. Pure judging logic.

The environment maps names to the student's objects: real ones in a trusted local run, proxies
of the sandboxed worker when grading. Either way, every comparison happens in the test code
running here, and every score is computed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .assignments import QuestionRules
from .errors import Outcome, SubmissionFailure
from .forbidden import find_library_routines
from .results import CaseResult, QuestionResult
from .submission import CodeCell
from .testfiles import CaseRun, QuestionTests, TestCaseSpec, run_case

LIBRARY_CHECK_NAME = "no_library_routines"
MAX_MESSAGE_CHARS = 2000


def _trim(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        return text[:MAX_MESSAGE_CHARS] + " [...]"
    return text


def describe_failure(run: CaseRun) -> tuple[Outcome, str]:
    """Outcome and student-facing message of a case that did not pass (never the test source)."""
    exc = run.error
    if isinstance(exc, SubmissionFailure):
        return exc.outcome, _trim(exc.message)
    if isinstance(exc, AssertionError):
        detail = str(exc) or "проверка ответа не прошла"
        return Outcome.FAILED, _trim(detail)
    return Outcome.FAILED, _trim(
        f"проверка не смогла использовать то, что вернул ваш код: {type(exc).__name__}: {exc}"
    )


def score_case(run: CaseRun) -> CaseResult:
    """Turn a case run into a scored result."""
    case = run.case
    if run.error is None:
        outcome, message, score = Outcome.PASSED, "", case.points
    else:
        (outcome, message), score = describe_failure(run), 0.0
    return CaseResult(
        question=case.question,
        name=case.name,
        hidden=case.hidden,
        max_score=case.points,
        score=score,
        outcome=outcome,
        message=message,
        seconds=run.seconds,
    )


def _not_run(
    question: QuestionTests, case: TestCaseSpec, outcome: Outcome, message: str
) -> CaseResult:
    return CaseResult(question.name, case.name, case.hidden, case.points, 0.0, outcome, message)


def zeroed_question(question: QuestionTests, outcome: Outcome, message: str) -> QuestionResult:
    """A question none of whose cases ran: each scores 0 with the same outcome and reason."""
    cases = tuple(_not_run(question, case, outcome, message) for case in question.cases)
    return QuestionResult(question.name, question.points, 0.0, cases)


def _skipped(question: QuestionTests, missing: Sequence[str]) -> QuestionResult:
    names = ", ".join(f"`{n}`" for n in missing)
    message = (
        f"{names}: не найдено в ноутбуке (не определено или ячейка упала с ошибкой), "
        "поэтому тест не запускался"
    )
    return zeroed_question(question, Outcome.SKIPPED, message)


def library_check(
    question: QuestionTests,
    rules: QuestionRules,
    cells: Sequence[CodeCell],
    reported_source: Callable[[str], str | None] | None = None,
) -> CaseResult | None:
    """The harness's own check that no library routine does the exercise's work, if required.

    Two layers: the submitted cells (static, with the notebook's import aliases), and the
    source the worker reports for the object the name is bound to at run time (which catches
    a name rebound after its ``def``; no source means it was not written in a cell).
    """
    if not rules.no_library_routines:
        return None
    findings = find_library_routines(cells, question.name, rules.allowed_routines)
    if reported_source is not None and not findings:
        try:
            source = reported_source(question.name)
        except SubmissionFailure:
            source = None  # the worker could not show the object: it cannot be verified
        # No source is checked as empty cells: nothing defines the name, which is a finding.
        runtime = [] if source is None else [CodeCell(index=-1, source=source)]
        findings = find_library_routines(runtime, question.name, rules.allowed_routines)
    if not findings:
        outcome, message = Outcome.PASSED, ""
    else:
        listed = "; ".join(f.describe() for f in findings[:5])
        outcome = Outcome.FAILED
        message = (
            "в этом задании нельзя вызывать библиотечные функции, которые делают свёртку "
            f"или пулинг за вас, поэтому вопрос оценён в 0: {listed}"
        )
    return CaseResult(question.name, LIBRARY_CHECK_NAME, False, 0.0, 0.0, outcome, message)


def _run_cases(question: QuestionTests, environment: Mapping[str, Any]) -> list[CaseResult]:
    """Run the cases in order; after a timeout the rest are not run (each would time out too)."""
    results: list[CaseResult] = []
    timed_out: CaseResult | None = None
    for case in question.cases:
        if timed_out is not None:
            message = f"не запускался: предыдущий тест ({timed_out.name}) превысил лимит времени"
            results.append(_not_run(question, case, Outcome.SKIPPED, message))
            continue
        result = score_case(run_case(case, environment))
        if result.outcome is Outcome.TIMEOUT:
            timed_out = result
        results.append(result)
    return results


def judge_question(
    question: QuestionTests,
    environment: Mapping[str, Any],
    rules: QuestionRules,
    cells: Sequence[CodeCell],
    is_defined: Callable[[str], bool],
    reported_source: Callable[[str], str | None] | None = None,
) -> QuestionResult:
    """Run and score every case of ``question``; a library-routine finding zeroes the question."""
    missing = [name for name in question.student_names if not is_defined(name)]
    if missing:
        return _skipped(question, missing)
    cases = _run_cases(question, environment)
    check = library_check(question, rules, cells, reported_source)
    notes: tuple[str, ...] = ()
    score = sum(case.score for case in cases)
    if check is not None:
        cases.append(check)
        if check.outcome is not Outcome.PASSED:
            score, notes = 0.0, (check.message,)
    return QuestionResult(question.name, question.points, score, tuple(cases), notes)
