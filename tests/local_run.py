"""Trusted, in-process grading for the project's own tests.

Runs notebooks that this project generated itself (reference solutions, stubs, mutants of the
reference) in this process and judges them with the same judging code as the real grader. It
must never be pointed at a student's submission: untrusted code runs only in the sandbox.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
from pathlib import Path
from types import ModuleType

import nbformat

from autograder.authoring import assign as authoring
from autograder.core.assignments import Assignment, load_assignment, tested_question_names
from autograder.core.results import QuestionResult
from autograder.grading.judging import GradedNotebook, judge_question
from autograder.grading.submission import CodeCell, gradable_cells
from autograder.grading.testfiles import QuestionTests, fixture_names, parse_question_tests


@functools.cache
def assignment(name: str) -> Assignment:
    return load_assignment(name)


@functools.cache
def built(name: str) -> authoring.BuiltAssignment:
    return authoring.build(assignment(name))


@functools.cache
def question_tests(name: str) -> tuple[QuestionTests, ...]:
    """Grader-side tests as generated now from the master notebook (not the files on disk)."""
    sources = built(name).all_tests
    return tuple(
        parse_question_tests(sources[question], f"<{name}/{question}>")
        for question in tested_question_names(assignment(name))
    )


def _load_trusted(name: str, path: Path | None, kind: str) -> ModuleType | None:
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location(f"{kind}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_probes(name: str) -> ModuleType | None:
    return _load_trusted(name, assignment(name).probes_file, "probes")


def load_fixtures(name: str) -> dict:
    """The assignment's fixtures by name: what the grader binds instead of notebook helpers."""
    module = _load_trusted(name, assignment(name).fixtures_file, "fixtures")
    names = fixture_names(assignment(name).fixtures_file)
    return {n: getattr(module, n) for n in names}


def execute_cells(cells: list[CodeCell], workdir: Path) -> tuple[dict, list[str]]:
    """Exec trusted cells into one namespace; a failing cell is recorded and skipped."""
    namespace: dict = {"__name__": "__main__"}
    errors = []
    with contextlib.chdir(workdir), contextlib.redirect_stdout(io.StringIO()):
        for cell in cells:
            try:
                exec(compile(cell.source, f"<cell {cell.index}>", "exec"), namespace)
            except Exception as exc:  # recorded like the worker does
                errors.append(f"cell {cell.index}: {type(exc).__name__}: {exc}")
    return namespace, errors


def trusted_environment(name: str, namespace: dict, seed: int) -> dict:
    """What the tests are bound to: the notebook's names, the assignment's fixtures (as the
    grader binds them instead of notebook helpers), ``seed`` and the probes."""
    environment = dict(namespace)
    environment.update(load_fixtures(name))
    environment["seed"] = seed
    environment["probes"] = load_probes(name)
    return environment


def grade_locally(
    name: str, nb: nbformat.NotebookNode, workdir: Path, seed: int = 1234
) -> dict[str, QuestionResult]:
    """Judge every test-graded question of a trusted notebook, in this process.

    Fixture names are bound to the assignment's fixtures.py, as the grader does. Nothing is
    recorded here, so rules decided from a run's record (structure, run-time library hits)
    are left to the sandboxed grading tests.
    """
    cells = gradable_cells(nb)
    namespace, _ = execute_cells(cells, workdir)
    environment = trusted_environment(name, namespace, seed)
    config = assignment(name).config
    notebook = GradedNotebook(cells, environment, namespace.__contains__)
    try:
        return {
            q.name: judge_question(q, config.rules_for(q.name), notebook)
            for q in question_tests(name)
        }
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
