"""Load grader-side test files with otter's own exception-based loader, and run test cases.

A test case is a function whose parameters are names bound from an environment (otter's
``global_environment.get(name)``). The environment decides what the names are: the student's
real objects (self-checks, trusted local runs) or proxies of a sandboxed worker (grading).
This module never formats a test's source into a message: hidden tests stay hidden.
"""

from __future__ import annotations

import ast
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otter.test_files import ExceptionTestFile

from ..core.errors import UsageError

# Names the harness binds itself; they are never looked up in the student's notebook.
HARNESS_NAMES = frozenset({"seed", "probes", "env"})
# Module names a test may take as parameters: the harness's own imports.
ALLOWED_MODULES: Mapping[str, str] = {
    "np": "numpy",
    "numpy": "numpy",
    "torch": "torch",
    "nn": "torch.nn",
    "F": "torch.nn.functional",
    "math": "math",
}


class TestFileError(UsageError, RuntimeError):
    """A grader-side test file is broken (the instructor's problem, not the student's)."""


@dataclass(frozen=True)
class TestCaseSpec:
    """One test case of a question, as otter loaded it."""

    question: str
    name: str
    hidden: bool
    points: float
    parameters: tuple[str, ...]
    runner: Any  # otter.test_files.exception_test.test_case


@dataclass(frozen=True)
class QuestionTests:
    """All test cases of one question and the question's points."""

    name: str
    points: float
    cases: tuple[TestCaseSpec, ...]


@dataclass(frozen=True)
class CaseRun:
    """What happened when one case ran: ``error`` is None when it passed."""

    case: TestCaseSpec
    error: BaseException | None
    seconds: float


def load_question_tests(path: Path) -> QuestionTests:
    """Load one otter exception-based test file."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TestFileError(f"cannot read test file {path}: {exc.strerror}") from exc
    return parse_question_tests(source, str(path))


def parse_question_tests(source: str, where: str) -> QuestionTests:
    """Parse the text of one otter exception-based test file (``where`` names it in errors)."""
    try:
        test_file = ExceptionTestFile.from_string(source, path=where)
    except Exception as exc:
        raise TestFileError(f"cannot load test file {where}: {type(exc).__name__}: {exc}") from exc
    cases = []
    for tc in test_file.test_cases:
        runner = tc.body
        cases.append(
            TestCaseSpec(
                question=test_file.name,
                name=_case_name(tc.name, runner, test_file.name),
                hidden=bool(tc.hidden),
                points=float(tc.points or 0.0),
                parameters=tuple(inspect.signature(runner.test_func).parameters),
                runner=runner,
            )
        )
    if not cases:
        raise TestFileError(f"test file {where} defines no test cases")
    points = sum(case.points for case in cases)
    return QuestionTests(name=test_file.name, points=points, cases=tuple(cases))


def _case_name(otter_name: str, runner: Any, question: str) -> str:
    """The test function's name (readable), unless the author named the case explicitly."""
    if otter_name and not otter_name.startswith(f"{question} - "):
        return otter_name
    return getattr(runner.test_func, "__name__", otter_name)


def fixture_names(path: Path | None) -> frozenset[str]:
    """Public top-level functions and classes of an assignment's ``fixtures.py``."""
    if path is None:
        return frozenset()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError) as exc:
        raise TestFileError(f"cannot read the fixtures file {path}: {exc}") from exc
    return frozenset(
        node.name for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
    )


def check_bindings(
    questions: Sequence[QuestionTests],
    graded_names: Callable[[str], Sequence[str]],
    fixtures: frozenset[str],
    where: str,
) -> None:
    """Every test parameter must be a name its question grades, a harness name, a module or a
    fixture: the grader never takes a helper from the student's notebook.

    Raises :class:`TestFileError` naming the parameter and what to do.
    """
    all_graded = {name for q in questions for name in graded_names(q.name)}
    clash = sorted(all_graded & fixtures)
    if clash:
        raise TestFileError(
            f"{where}: {', '.join(clash)} is both graded and a fixture; rename the fixture"
        )
    for question in questions:
        graded = set(graded_names(question.name))
        for case in question.cases:
            for name in case.parameters:
                if name in graded or name in HARNESS_NAMES or name in ALLOWED_MODULES:
                    continue
                if name not in fixtures:
                    raise TestFileError(
                        f"{where}: test {case.name} of question {question.name} takes "
                        f"{name!r}, which the question does not grade and fixtures.py does not "
                        "define; add it to fixtures.py (the grader's own helper) or to "
                        f"[questions.{question.name}] graded_names in assignment.toml"
                    )


def load_tests(tests_dir: Path, order: list[str]) -> list[QuestionTests]:
    """Load the test files of the questions in ``order`` from ``tests_dir``."""
    questions = []
    for name in order:
        path = tests_dir / f"{name}.py"
        if not path.is_file():
            raise TestFileError(
                f"no test file for question {name!r} at {path}; run `python grader.py assign`"
            )
        questions.append(load_question_tests(path))
    return questions


def run_case(case: TestCaseSpec, environment: Mapping[str, Any]) -> CaseRun:
    """Run one test case against ``environment``; any exception means the case did not pass."""
    started = time.monotonic()
    try:
        case.runner.call_func(environment)
    except Exception as exc:  # a failing test is data here, classified by the caller
        return CaseRun(case, exc, time.monotonic() - started)
    return CaseRun(case, None, time.monotonic() - started)
