"""Where a batch's submissions are graded: a local pool of N at a time, or a Ray cluster.

Both run the same job, :func:`grade_job`: one submission in a fresh work folder and its own
sandboxed worker, returning a :class:`GradedSubmission` (plain result records). A job never
raises for the submission's sake; a grader bug becomes an error row for that submission
alone, with the traceback written to ``OUT/submissions/<id>/grader_error.txt``. The executors
only move jobs out and results back; the batch writes every result, in the driver, as it
arrives.

Results cross between trusted processes only (the Ray task is the harness: it talks to its
own sandboxed worker and never runs student code), so Ray's own serialisation is fine here;
nothing a sandboxed worker wrote is ever unpickled.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ..core.archives import extract_tar
from ..core.assignments import Assignment, tested_question_names
from ..core.catalogue import LANGUAGE_ENV, _, current_language
from ..core.errors import UsageError
from ..grading.pipeline import (
    GradedSubmission,
    GradeOptions,
    failed_result,
    grade_submission,
    select_tests,
)
from ..grading.testfiles import QuestionTests, check_bindings, fixture_names, load_tests
from ..outputs.layout import GRADER_ERROR, submission_file
from ..sandbox import ConfinementFailed
from .collect import Found
from .resume import InFlight

GRADER_ERROR_FILE = GRADER_ERROR


class ExecutorError(UsageError, RuntimeError):
    """The executor cannot start (Ray unreachable, say): nothing was graded; what to do."""


class BatchStopped(ExecutorError):
    """The batch cannot go on (workers no longer start as confined as promised): finished
    results stay, the rest is left for a rerun of the same command."""


Deliver = Callable[[GradedSubmission], None]


@dataclass(frozen=True)
class BatchContext:
    """What every job of one batch shares."""

    assignment: Assignment
    options: GradeOptions
    out_dir: Path
    in_flight: InFlight | None = None  # markers of running jobs (local executor only)


class Executor(Protocol):
    """Grades jobs and hands each result to ``deliver`` in the calling thread."""

    def run(self, jobs: Sequence[Found], context: BatchContext, deliver: Deliver) -> None:
        """Grade every job; return when all were delivered (KeyboardInterrupt passes)."""


def load_checked_tests(assignment: Assignment, public_only: bool) -> list[QuestionTests]:
    """The assignment's tests, with every parameter checked to be graded, harness or fixture."""
    tests = load_tests(assignment.tests_dir, tested_question_names(assignment))
    check_bindings(
        tests,
        assignment.config.graded_names,
        fixture_names(assignment.fixtures_file),
        str(assignment.tests_dir),
    )
    if assignment.config.sandbox.packages is not None:
        from ..sandbox.packages import package_view

        package_view(assignment.config.sandbox.packages)  # an uninstalled package fails here
    return select_tests(tests, public_only)


_LOADED: dict[tuple[Path, bool], tuple[QuestionTests, ...]] = {}
_LOADED_LOCK = threading.Lock()


def tests_for(assignment: Assignment, public_only: bool) -> tuple[QuestionTests, ...]:
    """:func:`load_checked_tests`, once per process (the batch's own check and every job of a
    local pool share one load; a Ray worker process loads once for its many tasks)."""
    key = (assignment.tests_dir, public_only)
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = tuple(load_checked_tests(assignment, public_only))
        return _LOADED[key]


def _write_error(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def grade_job(job: Found, context: BatchContext, slot: int) -> GradedSubmission:
    """Grade one submission in a fresh work folder; a grader bug costs this submission only.

    A worker that starts less confined than the level promises runs no student code: the
    submission is tried once more on a fresh worker, and if that one falls short too the
    batch stops (:class:`BatchStopped`) rather than grade anyone less confined.
    """
    try:
        return _grade_once(job, context, slot)
    except ConfinementFailed:
        try:
            return _grade_once(job, context, slot)
        except ConfinementFailed as exc:
            raise BatchStopped(
                f"grading stopped at {job.submission_id}: {exc}. Nothing was graded less "
                "confined; the results finished so far are kept. Check the machine (the "
                "sandbox level's reasons are printed at the start), then run the same "
                "command again to grade the rest."
            ) from None


def _grade_once(job: Found, context: BatchContext, slot: int) -> GradedSubmission:
    tests = tests_for(context.assignment, context.options.public_only)
    with tempfile.TemporaryDirectory(prefix=f"grade-{job.submission_id}-") as workdir:
        try:
            return grade_submission(job.path, job.submission_id, context.assignment, tests,
                                    context.options, Path(workdir), slot)
        except ConfinementFailed:
            raise
        except Exception:  # the grader's own bug: this submission alone gets an error row
            trace = traceback.format_exc()
            _write_error(submission_file(context.out_dir, job.submission_id, GRADER_ERROR_FILE),
                         trace)
            message = _(
                "an internal error in the grader (not yours); the teacher can see the details "
                "in {file}"
            ).format(file=GRADER_ERROR_FILE)
            return GradedSubmission(failed_result(job.submission_id, tests, message), ())


class LocalPool:
    """``jobs`` submissions at a time in threads of this process (each drives a sandbox)."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)

    def run(self, jobs: Sequence[Found], context: BatchContext, deliver: Deliver) -> None:
        """Grade ``jobs``; on Ctrl-C, cancel what has not started and re-raise at once."""
        free = list(range(self.jobs))
        lock = threading.Lock()

        def graded(job: Found) -> GradedSubmission:
            with lock:
                slot = free.pop()
            if context.in_flight is not None:
                context.in_flight.begin(job.submission_id)
            try:
                return grade_job(job, context, slot)
            finally:
                with lock:
                    free.append(slot)

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="grade")
        try:
            pending: set[Future[GradedSubmission]] = {pool.submit(graded, j) for j in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    deliver(future.result())
        finally:
            # Normal end: nothing is left. Ctrl-C: drop the queue, do not wait for running jobs.
            pool.shutdown(wait=False, cancel_futures=True)


class RayPool:
    """One Ray task per submission on a Ray cluster (``address`` None: a local instance).

    Each task runs :func:`grade_job` on a Ray worker node, in its own sandbox there (the node
    needs this project and its virtual environment at the same path, and bubblewrap); with
    ``--device cuda`` each task asks Ray for one GPU. The submission's files travel with the
    task (a tar made here, links kept as links), so the nodes need no shared file system;
    at most a few tasks per Ray CPU are in flight, so a big class never sits in the object
    store all at once. Results stream back as tasks finish.
    """

    def __init__(self, address: str | None, jobs: int, gpu: bool = False):
        self.address, self.jobs, self.gpu = address, max(1, jobs), gpu

    def run(self, jobs: Sequence[Found], context: BatchContext, deliver: Deliver) -> None:
        """Grade ``jobs`` as Ray tasks; on Ctrl-C cancel them and re-raise."""
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            self._stream(ray, list(jobs), context, deliver)
        finally:
            if started_here:
                ray.shutdown()

    def _stream(self, ray: Any, jobs: list[Found], context: BatchContext,
                deliver: Deliver) -> None:
        data = context.options.evaluation
        shared = replace(context, options=replace(context.options, evaluation=None),
                         in_flight=None)  # a Ray task cannot take its grader down with it
        data_ref = ray.put(data) if data is not None else None
        task = ray.remote(_ray_task).options(num_cpus=1, num_gpus=1 if self.gpu else 0,
                                             max_retries=0)
        in_flight = 2 * max(self.jobs, int(ray.cluster_resources().get("CPU", 1)))
        job_of: dict[Any, Found] = {}
        queue = list(enumerate(jobs))
        try:
            while queue or job_of:
                while queue and len(job_of) < in_flight:
                    i, job = queue.pop(0)
                    ref = task.remote(job, pack(job.path), shared, data_ref, i % self.jobs)
                    job_of[ref] = job
                done, _waiting = ray.wait(list(job_of), num_returns=1)
                deliver(_ray_result(ray, done[0], job_of.pop(done[0]), context))
        except BaseException:
            for ref in job_of:
                ray.cancel(ref, force=True)
            raise

    def _connect(self, ray: Any) -> None:
        """Start a local instance or join ``address``; a failure is the instructor's to fix."""
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        try:
            ray.init(address=self.address, num_cpus=None if self.address else self.jobs,
                     include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(_project_root()),
                                               # the tasks write in the batch's language
                                               LANGUAGE_ENV: current_language()}})
        except (OSError, ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorError(
                f"could not start or reach {where}: {exc}. Check the address (`ray status` on "
                "the head node); a local instance needs a short TMPDIR (its socket paths must "
                "stay under 108 bytes), e.g. TMPDIR=/tmp"
            ) from None


def pack(path: Path) -> bytes:
    """A submission (file or folder) as an uncompressed tar; symbolic links stay links (the
    grader refuses them as it would here), nothing they point to is read."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=path.name, recursive=True)
    return buffer.getvalue()


def unpack(packed: bytes, into: Path) -> None:
    """The inverse of :func:`pack` (the tar is the driver's own; the filter still refuses
    absolute paths and members outside ``into``)."""
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        extract_tar(tar, into, "tar")


def _ray_task(job: Found, packed: bytes, context: BatchContext, data: Any,
              slot: int) -> GradedSubmission:
    """Runs in a Ray worker process: the submission arrives as bytes, the evaluation data
    from Ray's object store."""
    if data is not None:
        context = replace(context, options=replace(context.options, evaluation=data))
    with tempfile.TemporaryDirectory(prefix="ray-submission-") as folder:
        unpack(packed, Path(folder))
        return grade_job(replace(job, path=Path(folder) / job.path.name), context, slot)


def _ray_result(ray: Any, ref: Any, job: Found, context: BatchContext) -> GradedSubmission:
    """The task's result; a task that Ray itself lost (a node died) is an error row."""
    try:
        return ray.get(ref)
    except Exception as exc:  # ray.exceptions.RayError and kin: this submission alone
        if isinstance(getattr(exc, "cause", None), BatchStopped):
            raise exc.cause from None  # type: ignore[attr-defined]
        _write_error(submission_file(context.out_dir, job.submission_id, GRADER_ERROR_FILE),
                     f"the Ray task failed: {exc!r}\n")
        tests = tests_for(context.assignment, context.options.public_only)
        message = _("grading this submission did not finish on the cluster (the Ray task "
                    "failed, not through your fault); the teacher can see the details in "
                    "{file}").format(file=GRADER_ERROR_FILE)
        return GradedSubmission(failed_result(job.submission_id, tests, message), ())


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]  # autograder/batch/executors.py


def require_ray() -> Any:
    """The ray module, or an ExecutorError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "--executor ray needs Ray: pip install 'ray>=2.9' (or pip install -e '.[cluster]')"
        ) from None
    return ray
