"""Run one question's test cases against an environment and score them. Pure judging logic.

The environment maps names to the student's objects: real ones in a trusted local run, proxies
of the sandboxed worker when grading. Either way, every comparison happens in the test code
running here, and every score is computed here. Rules that tests cannot express are applied
here too, in layers: what the graded code names (static reading), what the graded calls ran
(the worker's record), and what neither can decide (review flags for a person).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

from ..core.assignments import QuestionRules
from ..core.catalogue import _
from ..core.errors import Outcome, SubmissionFailure
from ..core.results import CaseResult, QuestionResult, ReviewFlag
from ..sandbox import CallRecord
from . import routines
from .code_index import NotebookIndex, notebook_index
from .forbidden import reached_names, read_graded_code
from .submission import CodeCell
from .tampering import read_notebook
from .testfiles import CaseRun, QuestionTests, TestCaseSpec, run_case

LIBRARY_CHECK_NAME = "no_library_routines"
GRADER_CHECK_NAME = "grader_untouched"
STRUCTURE_CHECK_NAME = "forward_structure"
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class GradedNotebook:
    """Where the names a question grades live, and what the harness can learn about them.

    ``recording`` opens a span over which the worker's call records are collected; None in
    trusted local runs (nothing is recorded there, so the run-time layers are skipped).
    """

    cells: Sequence[CodeCell]
    environment: Mapping[str, Any]
    is_defined: Callable[[str], bool]
    reported_source: Callable[[str], str | None] | None = None
    recording: Callable[[], AbstractContextManager[list[CallRecord]]] | None = None


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
        detail = str(exc) or _("the check of the answer did not pass")
        return Outcome.FAILED, _trim(detail)
    return Outcome.FAILED, _trim(
        _("the check could not use what your code returned: {error_type}: {error}").format(
            error_type=type(exc).__name__, error=exc)
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


def _missing_message(missing: Sequence[str]) -> str:
    names = ", ".join(f"`{n}`" for n in missing)
    return _(
        "{names}: not found in the notebook (not defined, or its cell failed with an error), "
        "so this test was not run"
    ).format(names=names)


def _check_case(question: QuestionTests, name: str, findings: Sequence[str], what: str
                ) -> CaseResult:
    """A harness check, worth no points itself; a failure zeroes the question."""
    if not findings:
        return CaseResult(question.name, name, False, 0.0, 0.0, Outcome.PASSED, "")
    listed = "; ".join(findings[:6])
    return CaseResult(question.name, name, False, 0.0, 0.0, Outcome.FAILED, f"{what}: {listed}")


# ----------------------------------------------------------------------------- library rule


def _read_code(question: QuestionTests, rules: QuestionRules, graded: Sequence[str],
               notebook: GradedNotebook) -> tuple[list[str], list[ReviewFlag], set[str]]:
    """The static layers: the cells, then the source the worker reports for each name.

    Returns the findings, the flags and the notebook names the graded code reads."""
    findings: list[str] = []
    flags: list[ReviewFlag] = []
    reached: set[str] = set()
    index = notebook_index(notebook.cells)
    for name in graded:
        reading = read_graded_code(index, name, rules.allowed_routines)
        reached |= reading.reached
        flags.extend(_filed_under(f, question.name) for f in reading.flags)
        findings.extend(f.describe() for f in reading.findings)
        if reading.findings or notebook.reported_source is None:
            continue
        try:
            source = notebook.reported_source(name)
        except SubmissionFailure:
            source = None  # the worker could not show the object
        if source is None:
            if not any(f.kind == "not_defined_by_hand" for f in reading.flags):
                flags.append(ReviewFlag(question.name, "not_defined_by_hand",
                                        _("the object the name points to during the check was "
                                          "not written in a notebook cell: its code cannot be "
                                          "read"),
                                        seen=name))
            continue
        flags.extend(_source_swapped(question, index, name, source))
        runtime = read_graded_code([CodeCell(index=-1, source=source)], name,
                                   rules.allowed_routines)
        findings.extend(f.describe() for f in runtime.findings)
    return findings, flags, reached


def _source_swapped(question: QuestionTests, index: NotebookIndex, name: str, source: str
                    ) -> list[ReviewFlag]:
    """A function whose source, as the worker reports it, is no ``def`` of its name in the
    cells: its code was swapped after the cell ran (``f.__code__ = g.__code__``)."""
    defined = [d for d in index.all_definitions(name)
               if isinstance(d.node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not defined or not source.strip() or any(
            d.source_segment().strip() in source for d in defined):
        return []  # getsource adds decorators before and comments after the statement
    first = source.strip().splitlines()[0][:160]
    return [ReviewFlag(question.name, "code_swap",
                       _("during the check the name {name} points to code that is not in its "
                         "definition in the cells: the function's code was swapped after the "
                         "cell ran").format(name=name),
                       seen=first)]


def _filed_under(flag: ReviewFlag, question: str) -> ReviewFlag:
    """The same flag, filed under ``question``."""
    return flag if flag.question == question else replace(flag, question=question)


def library_check(question: QuestionTests, rules: QuestionRules, graded: Sequence[str],
                  notebook: GradedNotebook, records: Sequence[CallRecord] | None
                  ) -> tuple[CaseResult | None, list[ReviewFlag], set[str]]:
    """No library routine does the exercise's work: read, then recorded, then flagged.

    Also returns the notebook names the graded code reads (what the flags concern)."""
    if not rules.no_library_routines:
        return None, [], set()
    findings, flags, reached = _read_code(question, rules, graded, notebook)
    if records is not None:
        recorded = {name for record in records for name in record.routines}
        findings += [
            _("during the check a call reached {routine}").format(
                routine=routines.describe(name))
            for name in routines.forbidden_in(recorded, rules.allowed_routines)
        ]
    what = _(
        "in this assignment you may not call library functions that do convolution, pooling "
        "or sliding windows for you, so the question was scored 0"
    )
    return _check_case(question, LIBRARY_CHECK_NAME, findings, what), flags, reached


# ----------------------------------------------------------------------------- the grader


def grader_check(question: QuestionTests, rules: QuestionRules, graded: Sequence[str],
                 notebook: GradedNotebook, reached: set[str]
                 ) -> tuple[CaseResult | None, list[ReviewFlag]]:
    """The whole-notebook reading, for a question whose rules the worker's record serves.

    An explicit reach of the grader in any cell (its modules, the dispatch-mode and audit
    machinery the record rests on) zeroes the question; what a student might do innocently
    (gc, frames, ``__code__``, a method set on a class) is flagged where it concerns the
    question: everywhere, or a write into a name its graded code reads."""
    if not rules.records_calls:
        return None, []
    index = notebook_index(notebook.cells)
    reading = read_notebook(notebook.cells)
    if not reached:
        reached = {n for name in graded for n in reached_names(index, name)}
    flags = [ReviewFlag(question.name, e.kind, e.reason, e.cell, e.line, e.seen)
             for e in reading.flags_for(reached)]
    findings = [e.describe() for e in reading.decisive]
    what = _(
        "the notebook's code reaches into the grader itself (the autograder modules, the "
        "recording of calls, torch dispatch modes, audit hooks); an honest solution has no "
        "need for that, so the question was scored 0"
    )
    return _check_case(question, GRADER_CHECK_NAME, findings, what), flags


def _merge_flags(flags: Sequence[ReviewFlag]) -> list[ReviewFlag]:
    """One flag per line of the notebook (the first reason given), in notebook order; flags
    from the run (no line) after them."""
    merged: dict[tuple, ReviewFlag] = {}
    for flag in flags:
        key = (flag.cell, flag.line) if flag.cell is not None else (flag.kind, flag.seen)
        merged.setdefault(key, flag)
    return sorted(merged.values(), key=lambda f: (f.cell is None, f.cell or 0, f.line or 0))


# ----------------------------------------------------------------------------- structure


def structure_check(question: QuestionTests, rules: QuestionRules,
                    records: Sequence[CallRecord] | None
                    ) -> tuple[CaseResult | None, list[ReviewFlag]]:
    """What the model's forward passes dispatched, never what its classes are called.

    The modules that ran back the operators up: conv layers that ran while no convolution
    was recorded mean the record was disturbed, which a person must look at.
    """
    if rules.structure is None or records is None:
        return None, []
    ran = {name for record in records for name in record.routines}
    modules = {name for record in records for name in record.modules}
    spatial_modules = sorted(m for m in modules if routines.family_of(m) is not None)
    if rules.structure == "convolutional":
        # a convolution by hand through unfold (im2col + matmul) convolves too
        convolving = routines.forbidden_in(ran, (), (routines.CONVOLUTION,)) + sorted(
            name for name in ran if name.endswith(".im2col"))
        findings = [] if convolving or spatial_modules else [
            _("during the tests forward ran no convolution at all (no nn.Conv2d layer, no "
              "F.conv2d, no unfold): a network without convolutions does not count as "
              "convolutional")]
        unclear = not convolving and bool(spatial_modules)
        what = _("{question} must be a convolutional network, so the question was scored "
                 "0").format(question=question.name)
    else:
        spatial = routines.forbidden_in(ran, ())
        findings = [_("forward ran {routine}").format(routine=routines.describe(name))
                    for name in spatial]
        unclear = not spatial and bool(spatial_modules)
        what = _("{question} must be a fully connected network, so the question was scored "
                 "0").format(question=question.name)
    flags = [_unclear(question, spatial_modules)] if unclear else []
    return _check_case(question, STRUCTURE_CHECK_NAME, findings, what), flags


def _unclear(question: QuestionTests, modules: Sequence[str]) -> ReviewFlag:
    seen = _("the layers {modules} ran, but the record of operations showed no "
             "convolution").format(modules=", ".join(modules))
    return ReviewFlag(question.name, "structure_unclear",
                      _("the record of the run cannot tell whether the network has "
                        "convolutions: the notebook's code may have switched the recording off"),
                      seen=seen)


def tamper_flags(question: QuestionTests, records: Sequence[CallRecord] | None
                 ) -> list[ReviewFlag]:
    """Signs, in the worker's record, that the recorder itself was disturbed."""
    if records is None:
        return []
    seen = sorted({item for record in records for item in record.tampered})
    return [
        ReviewFlag(question.name, "record_tampered",
                   _("during the check the notebook's code disturbed the record of the run"),
                   seen=item)
        for item in seen
    ]


# ----------------------------------------------------------------------------- cases


def _run_cases(question: QuestionTests, graded: Sequence[str],
               notebook: GradedNotebook) -> list[CaseResult]:
    """Run the cases in order. A case whose graded names are missing is skipped alone; after
    a timeout the rest are not run (each would time out too)."""
    results: list[CaseResult] = []
    timed_out: CaseResult | None = None
    for case in question.cases:
        if timed_out is not None:
            message = _("not run: the previous test ({name}) exceeded the time limit").format(
                name=timed_out.name)
            results.append(_not_run(question, case, Outcome.SKIPPED, message))
            continue
        missing = [n for n in case.parameters if n in graded and not notebook.is_defined(n)]
        if missing:
            results.append(_not_run(question, case, Outcome.SKIPPED, _missing_message(missing)))
            continue
        result = score_case(run_case(case, notebook.environment))
        if result.outcome is Outcome.TIMEOUT:
            timed_out = result
        results.append(result)
    return results


def _recorded_cases(question: QuestionTests, graded: Sequence[str], notebook: GradedNotebook
                    ) -> tuple[list[CaseResult], list[CallRecord] | None]:
    if notebook.recording is None:
        return _run_cases(question, graded, notebook), None
    with notebook.recording() as records:
        cases = _run_cases(question, graded, notebook)
    return cases, list(records)


def judge_question(question: QuestionTests, rules: QuestionRules, notebook: GradedNotebook,
                   graded: Sequence[str] | None = None) -> QuestionResult:
    """Run and score every case of ``question``; a rule's finding zeroes the question.

    ``graded``: the notebook names the question grades (default: its own name).
    """
    graded = tuple(graded or rules.graded_names or (question.name,))
    records = None
    if all(not notebook.is_defined(name) for name in graded):
        cases = [_not_run(question, case, Outcome.SKIPPED, _missing_message(graded))
                 for case in question.cases]
        return QuestionResult(question.name, question.points, 0.0, tuple(cases))
    if rules.records_calls:
        cases, records = _recorded_cases(question, graded, notebook)
    else:
        cases = _run_cases(question, graded, notebook)
    library, flags, reached = library_check(question, rules, graded, notebook, records)
    grader, grader_flags = grader_check(question, rules, graded, notebook, reached)
    structure, structure_flags = structure_check(question, rules, records)
    flags = _merge_flags(grader_flags + flags + structure_flags + tamper_flags(question, records))
    notes: list[str] = []
    score = sum(case.score for case in cases)
    for check in (grader, library, structure):
        if check is None:
            continue
        cases.append(check)
        if check.outcome is not Outcome.PASSED:
            score = 0.0
            notes.append(check.message)
    return QuestionResult(question.name, question.points, score, tuple(cases), tuple(notes),
                          tuple(flags))
