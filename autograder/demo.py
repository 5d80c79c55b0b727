"""``grader.py demo``: verify the assignments, then grade example submissions end to end.

The examples are made fresh from the master notebooks (the reference solution, the student
stub, and a classic-bug mutant from tests/mutants/) plus any submissions committed under
examples/submissions/<assignment>/. Everything is graded through the real sandboxed path.
Saved models are graded on real CIFAR-10 when it is under data/ (the official files, or a copy
installed by ``grader.py data cifar10 --from``; then with the examples trained on real images),
else on the synthetic set (written there first if missing), and the demo says which.

Its result on stdout: per assignment, the summary line, the gradebook table, where the
gradebook and report are and what needs review. Its checks and notes (freshness, isolation,
data set, what was graded wrong) are log records on stderr.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

import nbformat
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .authoring import assign as authoring
from .authoring.mutants import apply_mutant, load_mutants
from .batch.entry import ClassGraded, GradeRequest, grade_class
from .batch.runner import BatchSummary
from .core.assignments import (
    PROJECT_ROOT,
    Assignment,
    discover,
    load_assignment,
    tested_question_names,
)
from .core.logs import log_to_stderr
from .core.text import visible
from .grading import datasets, imagesets
from .grading.evaluation import EvaluationData
from .outputs import writers

log = logging.getLogger(__name__)

EXAMPLES_DIR = PROJECT_ROOT / "examples" / "submissions"
FULL_MARKS_EXAMPLE = "good"  # the reference with trained weights, where models are graded


def _first_mutant(name: str, reference: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    mutants = load_mutants(name)
    return apply_mutant(reference, mutants[0]) if mutants else None


def make_examples(name: str, built: authoring.BuiltAssignment, folder: Path,
                  dataset: str | None = None) -> list[Path]:
    """Write the demo submissions of one assignment into ``folder``; returns their paths.

    The committed examples come from ``examples/submissions/<name>``, or, when saved models
    are graded on real CIFAR-10, from ``<name>_real`` (models trained on real images)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    made = {
        "reference": built.reference_notebook,
        "stub": built.student_notebook,
        "classic_bug": _first_mutant(name, built.reference_notebook),
    }
    paths = []
    for stem, nb in made.items():
        if nb is not None:
            path = folder / f"{stem}.ipynb"
            nbformat.write(nb, path)
            paths.append(path)
    committed = EXAMPLES_DIR / (f"{name}_real" if dataset == datasets.CIFAR10 else name)
    if committed.is_dir():
        for example in sorted(committed.iterdir()):
            target = folder / example.name
            if example.is_dir():
                shutil.copytree(example, target)
            else:
                shutil.copy2(example, target)
            paths.append(target)
    return paths


def _demo_dataset(assignment: Assignment) -> str | None:
    """Real CIFAR-10 when present under data/, else the synthetic set (made if missing)."""
    if not assignment.config.accuracy:
        return None
    root = datasets.DEFAULT_ROOT
    if imagesets.real_cifar10_under(root):
        return datasets.CIFAR10
    folder = datasets.dataset_dir(root, datasets.CIFAR10)
    if not (datasets.dataset_dir(root, datasets.SYNTHETIC) / datasets.MANIFEST).is_file():
        datasets.write_synthetic(root)
    log.warning(f"[data] no real CIFAR-10 under {folder} (`grader.py data cifar10`, or `data "
                f"cifar10 --from COPY`): models are graded on the SYNTHETIC set in CIFAR-10's "
                f"format ({datasets.dataset_dir(root, datasets.SYNTHETIC)})")
    return datasets.SYNTHETIC


def _data_line(name: str, data: EvaluationData) -> str:
    official = data.official.record()
    return (f"[data] {name}: models graded on {data.dataset}: {official.name} "
            f"({official.kind}, {official.images} test images, sha256 "
            f"{official.digest}...)")


def gradebook_table(summary: BatchSummary) -> Table:
    """The gradebook as a table: one row per submission, a column per question (its maximum
    under the name)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("submission", no_wrap=True)
    top = {q.name: q.max_score for r in summary.results for q in r.questions}
    for question in summary.questions:
        table.add_column(f"{question}\n({top.get(question, 0):g})", justify="right")
    table.add_column("total", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for result in summary.results:
        scores = {q.name: q.score for q in result.questions}
        cells = [f"{scores[q]:.3g}" if q in scores else "-" for q in summary.questions]
        status = result.status.value + (" (needs review)" if result.review_flags else "")
        table.add_row(Text(visible(result.submission_id, newlines=False)), *cells,
                      f"{result.score:.2f}/{result.max_score:g}", status)
    return table


def wrong_grades(assignment: Assignment, summary: BatchSummary, level: str) -> list[str]:
    """What the demo's grades get wrong: the reference short of full marks on a test-graded
    question, the stub above zero, or (where saved models are graded) the full-marks example
    short on any question. Each line names the assignment, the level and the question."""
    rows = {r.submission_id: {q.name: q for q in r.questions} for r in summary.results}
    where = f"{assignment.name} at the {level} level"
    problems = []
    for question in tested_question_names(assignment):
        got = rows.get("reference", {}).get(question)
        if got is None or got.score < got.max_score - 1e-9:
            score = "no result" if got is None else f"{got.score:g}/{got.max_score:g}"
            problems.append(f"{where}: the reference solution scores {score} on {question}")
    for name, got in rows.get("stub", {}).items():
        if got.score > 0:
            problems.append(f"{where}: the student stub scores {got.score:g} on {name}")
    if assignment.config.accuracy and FULL_MARKS_EXAMPLE in rows:
        for name, got in rows[FULL_MARKS_EXAMPLE].items():
            if got.score < got.max_score - 1e-9:
                problems.append(f"{where}: the {FULL_MARKS_EXAMPLE!r} example (the reference "
                                f"with trained weights) scores {got.score:g}/{got.max_score:g}"
                                f" on {name}")
    return problems


def run_demo(out_dir: Path, names: list[str] | None = None, jobs: int = 2,
             sandbox: str = "auto", language: str | None = None) -> int:
    """Check freshness, build example submissions, grade them; returns an exit status:
    1 when assignments/ is stale or a reference, stub or full-marks example is graded
    wrong (each named), else 0."""
    log_to_stderr()  # called without cli.main too (its diagnostics are log records)
    names = names or discover()
    stale_any = False
    wrong: list[str] = []
    for name in names:
        assignment = load_assignment(name)
        built = authoring.build(assignment)
        stale = authoring.stale_files(built, assignment)
        stale_any |= bool(stale)
        log.info(f"[assign] {name}: {'up to date' if not stale else f'STALE: {stale}'}")
        dataset = _demo_dataset(assignment)
        submissions = make_examples(name, built, out_dir / "submissions" / name, dataset)
        graded = grade_class(GradeRequest(
            name, tuple(submissions), out_dir / name, sandbox=sandbox, jobs=jobs,
            seed=secrets.randbelow(2**31), data_dir=datasets.DEFAULT_ROOT,
            dataset=dataset or "auto", language=language))
        if name == names[0]:  # the level chosen for the first batch, probed once by it
            log.info(f"[sandbox] {graded.isolation.one_line()}")
        if graded.evaluation is not None:
            log.info(_data_line(name, graded.evaluation))
        level = graded.isolation.level.value
        _print_graded(name, level, graded)
        wrong += wrong_grades(assignment, graded.summary, level)
    if stale_any:
        log.warning("assignments/ is stale: run `python grader.py assign` and commit the result")
    if wrong:
        log.error("\nGRADED WRONG (the grader or this machine's set-up is broken; nothing here "
                  "is the examples' fault):\n" + "\n".join(f"  {line}" for line in wrong))
    return 1 if stale_any or wrong else 0


def _print_graded(name: str, level: str, graded: ClassGraded) -> None:
    """The demo's result for one assignment, on stdout: the summary line, the gradebook
    table, where the gradebook and report are, and what needs review."""
    print(f"[grade] {name} (sandbox: {level}, seed: {graded.seed}): "
          f"{graded.summary.one_line()}")
    Console(width=max(160, shutil.get_terminal_size().columns)).print(
        gradebook_table(graded.summary))
    print(f"    -> {graded.summary.out_dir / 'gradebook.csv'}")
    print(f"    -> {graded.report or graded.report_problem}")
    listing = writers.review_list(graded.summary.results)
    if listing:
        print("    " + listing.replace("\n", "\n    ").rstrip())
