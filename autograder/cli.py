"""Command line: parse arguments, call one function per command, map errors to exit codes.

A command prints its result on stdout (what a user may pipe: a summary, a listing, a path);
its diagnostics (progress, notes, warnings, errors) are log records, shown on stderr by the
handler :func:`main` installs first (:func:`~.core.logs.log_to_stderr`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .authoring import assign as authoring
from .core.assignments import PROJECT_ROOT, discover
from .core.catalogue import LANGUAGES
from .core.errors import EXIT_USAGE, UsageError, exit_status
from .core.logs import log_to_stderr
from .outputs import writers
from .sandbox.launcher import LEVEL_NAMES, SANDBOX_ENV

log = logging.getLogger(__name__)

DEFAULT_DATA_ROOT = PROJECT_ROOT / "data"  # autograder.grading.datasets.DEFAULT_ROOT, without numpy
EXIT_OK = 0
EXIT_STALE = 1  # `assign --check`: generated files differ
EXIT_INTERRUPTED = 130  # as a shell reports SIGINT


def _selected_assignments(names: Sequence[str]) -> list[str]:
    return list(names) if names else discover(PROJECT_ROOT)


def cmd_assign(args: argparse.Namespace) -> int:
    """Regenerate (or, with --check, verify) the student notebooks and grader-side tests."""
    names = _selected_assignments(args.names)
    if not names:
        raise UsageError("no assignments found under solutions/: add one with "
                         "`python grader.py new NAME`")
    done = authoring.regenerate(names, args.check)
    print("\n".join(done.lines))
    if done.stale:
        print("\nstale generated files (run `python grader.py assign` and commit):")
        print("\n".join(f"  {rel}" for rel in done.stale))
        return EXIT_STALE
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    """Scaffold a new assignment that assigns and grades as it is, then generate it."""
    from .authoring import scaffold

    made = scaffold.create(args.name, args.title, PROJECT_ROOT)
    print(scaffold.report(made, scaffold.generate(made.name, PROJECT_ROOT)), end="")
    return EXIT_OK


def cmd_grade(args: argparse.Namespace) -> int:
    """Grade submissions in sandboxed workers; write gradebook, results and feedback."""
    from .batch.entry import BatchInterrupted, BatchStopped, grade_class
    from .batch.progress import BatchProgress

    try:
        with BatchProgress() as progress:
            graded = grade_class(_grade_request(args), progress.plan, progress.done)
    except (BatchStopped, BatchInterrupted) as exc:  # every sandbox is stopped already
        return _exit_now(f"{'' if isinstance(exc, BatchInterrupted) else 'error: '}{exc}",
                         EXIT_INTERRUPTED if isinstance(exc, BatchInterrupted) else EXIT_USAGE)
    print(graded.one_line())
    listing = writers.review_list(graded.summary.results)
    print("\n" + listing if listing else "", end="")
    if graded.report:
        print(f"report: {graded.report}")
    else:
        log.error(f"error: {graded.report_problem}")
    return EXIT_OK


def _grade_request(args: argparse.Namespace):
    """``grade``'s options as a :class:`~.batch.entry.GradeRequest`."""
    from .batch.entry import GradeRequest

    return GradeRequest(
        args.assignment, tuple(args.submissions), args.out, args.tests, args.sandbox, args.seed,
        args.regrade, args.jobs, args.timeout_cell, args.timeout_call, args.data_dir,
        args.dataset, args.test_set, args.secret_set, args.retrain, args.device, args.executor,
        args.address, language=args.language)


def _exit_now(message: str, status: int) -> int:
    """Say why and exit at once, without waiting for the abandoned grading threads."""
    log.error(f"\n{message}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cmd_data(args: argparse.Namespace) -> int:
    """Put CIFAR-10 (torchvision, or a copy of its images) or the synthetic set where grade
    looks."""
    from .grading import imagesets

    print(imagesets.put_in_place(args.which, args.root, args.source))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Write OUT/report.html from the results on disk in OUT."""
    from .outputs.report import write_report

    print(f"report: {write_report(args.out)}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Verify the assignments and grade example submissions of each."""
    from .demo import run_demo

    return run_demo(args.out, args.names or None, args.jobs, args.sandbox, args.language)


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _language_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--language", choices=LANGUAGES, default=None,
                        help="what students read (feedback, messages): default the "
                        "assignment's `language` in assignment.toml (Russian when unset)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of grader.py."""
    parser = argparse.ArgumentParser(
        prog="grader.py", description="CNN-lesson autograder: make assignments, grade submissions."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    assign = commands.add_parser(
        "assign", help="generate student notebooks and grader-side tests from solutions/"
    )
    assign.add_argument("names", nargs="*", help="assignments to generate (default: all)")
    assign.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 naming the files that differ from what would be generated",
    )
    assign.set_defaults(func=cmd_assign)

    new = commands.add_parser(
        "new", help="start an assignment: master notebook with an example question, "
        "assignment.toml, tests/mutants/NAME.toml; then generate it as assign does"
    )
    new.add_argument("name", help="folder and notebook name, e.g. 04_batch_norm")
    new.add_argument("--title", help="the notebook's heading, in the course's language "
                     "(default: 'Assignment NAME' in that language)")
    new.set_defaults(func=cmd_new)

    grade = commands.add_parser("grade", help="grade submissions (.ipynb, folder or .zip)")
    grade.add_argument(
        "--assignment", required=True, help="assignment name, e.g. 01_convolution_pooling"
    )
    grade.add_argument("submissions", nargs="+", type=Path, metavar="DIR_OR_FILE",
                       help=".ipynb/.zip files, submission folders, a folder of them, a GitHub "
                       "Classroom download or a Gradescope export")
    grade.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    grade.add_argument(
        "--tests",
        choices=["public", "all"],
        default="all",
        help="grade with public tests only, or with public and hidden tests (default: all)",
    )
    grade.add_argument(
        "--sandbox",
        choices=["auto", *LEVEL_NAMES],
        default=os.environ.get(SANDBOX_ENV) or "auto",
        help="isolation: bubblewrap; uid (as root without namespaces: a slot uid confined by "
        "Landlock); a plain process with limits; or auto, the strongest that works here "
        f"(default: ${SANDBOX_ENV}, else auto)",
    )
    grade.add_argument(
        "--timeout-cell", type=_positive, metavar="S", help="seconds per notebook cell"
    )
    grade.add_argument(
        "--timeout-call", type=_positive, metavar="S", help="seconds per call from a test"
    )
    grade.add_argument(
        "--jobs", type=_count, default=1, metavar="N", help="submissions graded at once"
    )
    grade.add_argument(
        "--seed", type=int,
        help="seed for hidden tests' random inputs (default: the seed of an earlier batch in "
        "--out, so a resumed run asks the same questions; else drawn)",
    )
    grade.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_ROOT,
                       help=f"folder with cifar10/ or synthetic/ (default: {DEFAULT_DATA_ROOT})")
    grade.add_argument("--dataset", choices=["auto", "cifar10", "synthetic"], default="auto",
                       help="what saved models are graded on (auto: CIFAR-10 when present, "
                       "else the synthetic set)")
    grade.add_argument("--test-set", type=Path, metavar="PATH",
                       help="grade saved models on this labelled image set: the official "
                       "CIFAR-10 folder, a CIFAR-10.1-style *_data.npy, or a folder or archive "
                       "(.tar, .tar.gz, .tar.xz, .zip) with one folder of 32x32 RGB images per "
                       "class (its test/ split when it has train/ and test/)")
    grade.add_argument("--secret-set", type=Path, metavar="PATH",
                       help="a secret test set (any kind --test-set takes), graded beside the "
                       "official one (the synthetic set has its own)")
    grade.add_argument("--retrain", action="store_true",
                       help="also train each model class with the student's own train_epoch "
                       "under the assignment's budget, and flag a large accuracy gap")
    grade.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="where sandboxed models run (auto: CUDA when available)")
    grade.add_argument("--regrade", action="store_true",
                       help="grade everything again (default: results already in --out under "
                       "the same submission, tests, grader and options are kept)")
    grade.add_argument("--executor", choices=["local", "ray"], default="local",
                       help="local: --jobs at a time on this machine; ray: one Ray task per "
                       "submission (see docs/SCALING.md)")
    grade.add_argument("--address", metavar="ADDR",
                       help="with --executor ray: the cluster's address (default: start a "
                       "local Ray instance with --jobs CPUs)")
    _language_option(grade)
    grade.set_defaults(func=cmd_grade)

    data = commands.add_parser(
        "data", help="put CIFAR-10, or a synthetic set in its exact format, where grade looks"
    )
    data.add_argument("which", choices=["cifar10", "synthetic"])
    data.add_argument("--from", dest="source", type=Path, metavar="PATH",
                      help="cifar10: install a copy from a folder or archive of its images in "
                      "ImageFolder layout (train/ and test/ with a folder per class), decoded "
                      "and checked, where grade looks (no download)")
    data.add_argument("--root", type=Path, default=DEFAULT_DATA_ROOT,
                      help=f"folder holding the datasets (default: {DEFAULT_DATA_ROOT})")
    data.set_defaults(func=cmd_data)

    report = commands.add_parser("report", help="write OUT/report.html: class summary, plots, "
                                 "failures, flags and similar pairs, linked to each feedback")
    report.add_argument("out", type=Path, metavar="OUT", help="the --out folder of a batch")
    report.set_defaults(func=cmd_report)

    demo = commands.add_parser("demo", help="verify assignments and grade example submissions")
    demo.add_argument("names", nargs="*", help="assignments (default: all)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    demo.add_argument("--jobs", type=_count, default=2, metavar="N", help="submissions at once")
    demo.add_argument("--sandbox", choices=["auto", *LEVEL_NAMES], default="auto",
                      help="isolation level to grade at (default: the strongest that works)")
    _language_option(demo)
    demo.set_defaults(func=cmd_demo)
    from .integrations import (
        classroom,
        github,
        gradescope,  # packaged copies and CI (own modules)
    )

    for module in (classroom, gradescope, github):
        module.register(commands)
    run = commands.add_parser("run-gradescope", help="what a Gradescope bundle's "
                              "run_autograder runs: grade ROOT/submission with all tests into "
                              "ROOT/results/results.json")
    run.add_argument("root", type=Path, metavar="ROOT", help="Gradescope's root (/autograder)")
    run.add_argument("name", help="assignment, e.g. 03_convnet_cifar10")
    run.set_defaults(func=cmd_run_gradescope)
    return parser


def cmd_run_gradescope(args: argparse.Namespace) -> int:
    """Grade a Gradescope submission; the level from $AUTOGRADER_SANDBOX (default auto)."""
    from .integrations import gradescope

    sandbox = os.environ.get(SANDBOX_ENV, "") or "auto"
    return gradescope.run_autograder(args.root, args.name, sandbox)


def main(argv: Sequence[str] | None = None) -> int:
    """Run grader.py with ``argv``; returns the process exit status. Diagnostics go to
    stderr from here on."""
    log_to_stderr()
    parser = build_parser()
    args = parser.parse_args(argv)
    return exit_status(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
