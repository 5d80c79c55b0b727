"""One submission end to end: load, run its cells in a sandboxed worker, judge, score.

Every failure that belongs to the submission ends here as a result with a message for the
student; nothing a submission does can raise out of :func:`grade_submission` except the
grader's own bugs, which the batch turns into an error row for that submission alone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.assignments import Assignment, Evaluation
from ..core.catalogue import N_, _
from ..core.errors import Outcome
from ..core.results import (
    ALL_PACKAGES,
    ALL_TESTS,
    PUBLIC_TESTS,
    CellRecord,
    ModelMeasurement,
    RunDetails,
    SubmissionResult,
    SubmissionStatus,
)
from ..sandbox import (
    CellOutcome,
    CellStatus,
    Isolation,
    SandboxLevel,
    WorkerLimits,
    WorkerSession,
    WorkerSpec,
)
from .evaluation import EvaluationData, ModelGrading, grade_models
from .judging import GradedNotebook, judge_question, zeroed_question
from .modelcheck import side_data
from .remote import ProxyEnvironment
from .submission import (
    CodeCell,
    Submission,
    SubmissionError,
    check_code_cells,
    gradable_cells,
    load_submission,
)
from .testfiles import QuestionTests, fixture_names

WATCHABLE = ("numpy", "torch")  # libraries the worker's recorder knows


@dataclass(frozen=True)
class GradeOptions:
    """How to grade: which tests, which isolation, which budgets, which seed."""

    isolation: Isolation  # the level, what confines it, why stronger ones were passed over
    seed: int
    public_only: bool = False
    cell_timeout_s: float | None = None  # None: the assignment's own budget
    call_timeout_s: float | None = None
    worker_limits: WorkerLimits = field(default_factory=WorkerLimits)
    evaluation: EvaluationData | None = None  # what saved models are graded on (None: not)
    device: str = "cpu"  # where the worker runs the models: "cpu" or "cuda"
    retrain: bool = False  # also train each model class with the student's own code
    threads: int = 1  # CPU threads a worker may use for models (cores / --jobs)
    gpu_share: float = 1.0  # at most this share of GPU memory per worker (0.9 / --jobs)


@dataclass(frozen=True)
class GradedSubmission:
    """A result plus what the student should be told about running their notebook."""

    result: SubmissionResult
    notices: tuple[str, ...]


# What the student is told about a cell that did not end well, by its status (the string,
# as in ``extra_data.cells``): English marked for the catalogue, translated with _() where
# a notice is made. Fields: n (the cell's number), etype, emsg, limit (seconds).
CELL_STATUS_TEXT: dict[str, str] = {
    CellStatus.ERROR.value: N_("cell {n} failed with the error {etype}: {emsg}"),
    CellStatus.TIMEOUT.value: N_("cell {n} did not finish within {limit:g} s and was stopped"),
    CellStatus.DIED.value: N_("cell {n} ended the Python process ({emsg}); the process was "
                              "restarted and the cells after it were run"),
    CellStatus.INTERRUPTED.value: N_("cell {n} was interrupted"),
    CellStatus.REFUSED.value: N_("cell {n} starts with a cell magic (%%...); such cells are "
                                 "not run when grading"),
}


def select_tests(questions: Sequence[QuestionTests], public_only: bool) -> list[QuestionTests]:
    """All tests, or only the public ones (what a student's own CI may run)."""
    if not public_only:
        return list(questions)
    selected = []
    for question in questions:
        cases = tuple(case for case in question.cases if not case.hidden)
        points = sum(case.points for case in cases)
        selected.append(replace(question, cases=cases, points=points))
    return selected


def failed_result(
    sub_id: str, questions: Sequence[QuestionTests], message: str,
    details: RunDetails | None = None,
) -> SubmissionResult:
    """A submission that could not be graded: every question 0, the reason in the message."""
    return SubmissionResult(
        submission_id=sub_id,
        status=SubmissionStatus.ERROR,
        message=message,
        questions=tuple(zeroed_question(q, Outcome.SKIPPED, message) for q in questions),
        details=RunDetails() if details is None else details,
    )


def _prepare_scratch(submission: Submission, scratch: Path, kept: Path,
                     harness_reads: Iterable[str]) -> Path | None:
    """Fill the worker's folder; return where the harness reads the submitted files later.

    A zip was extracted straight into ``scratch`` (its only full copy): the few files the
    harness reads after the cells ran (``harness_reads``: the weights files) are copied to
    ``kept`` first, out of the worker's reach. A folder is copied in; the harness reads the
    original.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    if submission.files_dir is None:
        return None
    if submission.files_dir == scratch:
        kept.mkdir(parents=True, exist_ok=True)
        for name in harness_reads:
            source = scratch / name
            if source.is_file() and not source.is_symlink():
                (kept / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, kept / name)
        return kept
    shutil.copytree(submission.files_dir, scratch, dirs_exist_ok=True, symlinks=True,
                    ignore=shutil.ignore_patterns(".git"))  # a Classroom repository's history
    return submission.files_dir


def _run_cells(
    session: WorkerSession, cells: Sequence[CodeCell], cell_timeout_s: float, deadline: float
) -> list[CellOutcome]:
    outcomes = []
    for cell in cells:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        outcomes.append(session.run_cell(cell.index, cell.source, min(cell_timeout_s, remaining)))
    return outcomes


def _cell_notices(
    outcomes: Sequence[CellOutcome], cells_total: int, cell_timeout_s: float
) -> list[str]:
    notices = []
    for outcome in outcomes:
        template = CELL_STATUS_TEXT.get(outcome.status)
        if template is not None:
            notices.append(
                _(template).format(
                    n=outcome.index + 1,
                    etype=outcome.error_type or "",
                    emsg=(outcome.error_message or "").strip()[:300],
                    limit=cell_timeout_s,
                )
            )
        if outcome.notes:
            notices.append(_(
                "cell {n}: lines starting with ! or % (shell commands and Jupyter magics) are "
                "not run when grading"
            ).format(n=outcome.index + 1))
        if outcome.output_truncated:
            notices.append(_("the output of cell {n} is too large and was cut short").format(
                n=outcome.index + 1))
    if len(outcomes) < cells_total:
        notices.append(_(
            "the total time for grading ran out: {done} of {total} cells were run"
        ).format(done=len(outcomes), total=cells_total))
    return notices


def _model_notices(assignment: Assignment, data: EvaluationData | None) -> list[str]:
    """Say which data the saved models were graded on, or that they were not graded."""
    names = [q.question for q in assignment.config.accuracy]
    names += [q.question for q in assignment.config.comparison]
    if not names:
        return []
    if data is None:
        return [_("questions {names} (the accuracy of the saved models) were not graded in "
                  "this check: their points are not counted here").format(
                      names=", ".join(names))]
    if data.dataset == "cifar10":
        return [_("the models' accuracy was measured on the real CIFAR-10 test set")]
    return [_("the models' accuracy was measured on a synthetic set in the CIFAR-10 format "
              "(the real CIFAR-10 is not on this machine)")]


def _isolation_notice(isolation: Isolation) -> str:
    """For the student, in one plain sentence: the check ran below bubblewrap, and how. The
    machine's reasons (paths, versions, tracebacks) are the instructor's: they are in the
    summary line, ``extra_data.isolation`` and the report, never in the student's feedback."""
    if isolation.level is SandboxLevel.UID and "Landlock ABI" in isolation.confinement:
        how = _("the code ran as a separate unprivileged user, with Landlock restrictions")
    elif isolation.level is SandboxLevel.UID:
        how = _("the code ran as a separate unprivileged user")
    else:
        how = _("the isolation is weaker: only the process's limits; the packages not available "
                "in the assignment were not hidden, only forbidden to import")
    return _("the check ran without bubblewrap (it is not available on the grader's machine "
             "right now): {how}").format(how=how)


def _shared(settings: Evaluation, options: GradeOptions) -> Evaluation:
    """The evaluation settings with this worker's share of the GPU memory."""
    share = min(settings.gpu_memory_fraction, options.gpu_share)
    return replace(settings, gpu_memory_fraction=share)


def _model_grading(assignment: Assignment, options: GradeOptions) -> ModelGrading | None:
    """The saved models to grade, or None when this batch grades none."""
    config = assignment.config
    if options.evaluation is None or not config.accuracy:
        return None
    return ModelGrading(config.accuracy, config.comparison, options.evaluation,
                        _shared(config.evaluation, options),
                        config.retrain if options.retrain else None)


def worker_spec(assignment: Assignment, options: GradeOptions, scratch: Path,
                slot: int) -> WorkerSpec:
    """How the worker of this assignment is started: trusted files, packages, recorders."""
    packages = assignment.config.sandbox.packages
    watch = frozenset()
    if assignment.config.records_calls:
        watch = frozenset(lib for lib in WATCHABLE if packages is None or lib in packages)
    return WorkerSpec(
        scratch_dir=scratch,
        probes_file=assignment.probes_file,
        level=options.isolation.level,
        limits=options.worker_limits,
        slot=slot,
        fixtures_file=assignment.fixtures_file,
        watch=watch,
        packages=packages,
        gpu=options.device == "cuda",
    )


def grade_submission(
    path: Path,
    sub_id: str,
    assignment: Assignment,
    questions: Sequence[QuestionTests],
    options: GradeOptions,
    workdir: Path,
    slot: int = 0,
) -> GradedSubmission:
    """Grade one submission in its own sandboxed worker.

    ``questions`` are the tests to run, already narrowed by :func:`select_tests`.
    """
    scratch = workdir / "scratch"
    try:
        submission = load_submission(path, scratch)  # a zip: extracted where the worker works
        check_code_cells(submission.notebook, submission.notebook_name)
    except SubmissionError as exc:
        return GradedSubmission(failed_result(sub_id, questions, str(exc)), ())
    weights = [q.weights for q in assignment.config.accuracy] if options.evaluation else []
    files_dir = _prepare_scratch(submission, scratch, workdir / "kept", weights)
    side = (side_data(submission.files_dir, weights, assignment.config.evaluation.side_bytes)
            if weights else None)  # before any cell ran: the files as submitted
    budgets = assignment.config.limits
    cell_timeout_s = options.cell_timeout_s or budgets.cell_timeout_s
    call_timeout_s = options.call_timeout_s or budgets.call_timeout_s
    cells = gradable_cells(submission.notebook)
    spec = worker_spec(assignment, options, scratch, slot)
    started = time.monotonic()
    with WorkerSession(spec) as session:
        outcomes = _run_cells(session, cells, cell_timeout_s, started + budgets.total_timeout_s)
        environment = ProxyEnvironment(
            session, options.seed, call_timeout_s, fixture_names(assignment.fixtures_file)
        )
        notebook = GradedNotebook(
            cells, environment, environment.is_defined, environment.reported_source,
            environment.recording,
        )
        results = tuple(
            judge_question(question, assignment.config.rules_for(question.name), notebook)
            for question in questions
        )
        measured: Mapping[str, ModelMeasurement] = {}
        model_grading = _model_grading(assignment, options)
        if model_grading is not None:
            graded_models = grade_models(
                environment.caller, model_grading, tested={r.name: r for r in results},
                files_dir=files_dir, seed=options.seed, device=options.device,
                threads=options.threads, side=side,
            )
            results += graded_models.questions
            measured = graded_models.measured
        level, restarts = session.level, session.restarts
    notices = _cell_notices(outcomes, len(cells), cell_timeout_s)
    notices.extend(_model_notices(assignment, options.evaluation))
    if level is not SandboxLevel.BWRAP:
        notices.append(_isolation_notice(options.isolation))
    if any(q.review for q in results):
        notices.append(_(
            "part of the code could not be checked automatically: the teacher will look at it "
            "(see the \"needs a teacher's review\" marks below); the points may change"
        ))
    details = RunDetails(
        seed=options.seed,
        isolation=options.isolation.record(),
        packages=ALL_PACKAGES if spec.packages is None else tuple(spec.packages),
        tests=PUBLIC_TESTS if options.public_only else ALL_TESTS,
        worker_restarts=restarts,
        cells=tuple(CellRecord(o.index, o.status.value, round(o.seconds, 3)) for o in outcomes),
        seconds=round(time.monotonic() - started, 3),
        warnings=submission.warnings,
        sha256=submission.sha256,
        evaluation=(options.evaluation.record(options.device, measured)
                    if options.evaluation is not None and measured else None),
    )
    result = SubmissionResult(sub_id, SubmissionStatus.GRADED, "", results, details)
    return GradedSubmission(result, tuple(notices) + submission.warnings)
