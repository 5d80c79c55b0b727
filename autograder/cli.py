"""Command line: parse arguments, call one function per command, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import authoring, writers
from .assignments import PROJECT_ROOT, Assignment, ConfigError, discover, load_assignment
from .devices import DeviceUnavailable, choose_device
from .sandbox.packages import PackageError
from .testfiles import TestFileError

if TYPE_CHECKING:
    from .evaluation import EvaluationData
DEFAULT_DATA_ROOT = PROJECT_ROOT / "data"  # autograder.datasets.DEFAULT_ROOT, without numpy
EXIT_OK = 0
EXIT_STALE = 1
EXIT_USAGE = 2


def _selected_assignments(names: Sequence[str]) -> list[str]:
    return list(names) if names else discover(PROJECT_ROOT)


def cmd_assign(args: argparse.Namespace) -> int:
    """Regenerate (or, with --check, verify) the student notebooks and grader-side tests."""
    names = _selected_assignments(args.names)
    if not names:
        print("no assignments found under solutions/", file=sys.stderr)
        return EXIT_USAGE
    stale_total: list[str] = []
    for name in names:
        assignment = load_assignment(name)
        built = authoring.build(assignment)
        if args.check:
            stale = authoring.stale_files(built, assignment)
            stale_total.extend(stale)
            print(f"{name}: {'up to date' if not stale else f'{len(stale)} stale file(s)'}")
        else:
            changed = authoring.write(built, assignment)
            print(f"{name}: {len(built.files)} file(s) generated, {len(changed)} changed")
    if stale_total:
        print("\nstale generated files (run `python grader.py assign` and commit):")
        for rel in stale_total:
            print(f"  {rel}")
        return EXIT_STALE
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    """Scaffold a new assignment that assigns and grades as it is, then generate it."""
    from . import scaffold

    try:
        made = scaffold.create(args.name, args.title, PROJECT_ROOT)
    except scaffold.ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(scaffold.report(made, scaffold.generate(made.name, PROJECT_ROOT)), end="")
    return EXIT_OK


def cmd_grade(args: argparse.Namespace) -> int:
    """Grade submissions in sandboxed workers; write gradebook, results and feedback."""
    from .batch import OutputDirError, grade_batch
    from .datasets import DatasetError
    from .grading import GradeOptions
    from .progress import BatchProgress
    from .sandbox import SandboxUnavailable, choose_level

    assignment = load_assignment(args.assignment)
    missing = [p for p in args.submissions if not p.exists()]
    if missing:
        print(f"error: no such submission: {', '.join(map(str, missing))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        level = choose_level(args.sandbox)
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = _evaluation_data(args, assignment)
        device = choose_device(args.device)
    except (DatasetError, DeviceUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = GradeOptions(
        level=level,
        seed=args.seed if args.seed is not None else secrets.randbelow(2**31),
        public_only=args.tests == "public",
        cell_timeout_s=args.timeout_cell,
        call_timeout_s=args.timeout_call,
        evaluation=data,
        device=device,
        retrain=args.retrain,
        threads=max(1, (os.cpu_count() or 1) // args.jobs),
        gpu_share=0.9 / args.jobs,  # workers on one GPU share it (a courtesy cap each)
    )
    with BatchProgress(len(args.submissions)) as progress:
        try:
            summary = grade_batch(
                args.submissions, assignment, options, args.out, args.jobs, progress.done
            )
        except OutputDirError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    graded = sum(1 for r in summary.results if r.status.value == "graded")
    models = f", models on {data.dataset} ({device})" if data is not None else ""
    print(
        f"graded {graded} of {len(summary.results)} submission(s) of {assignment.name} "
        f"(sandbox: {level.value}, seed: {options.seed}{models}); results in {summary.out_dir}"
    )
    listing = writers.review_list(summary.results)
    if listing:
        print("\n" + listing, end="")
    return EXIT_OK


def _evaluation_data(args: argparse.Namespace, assignment: Assignment) -> EvaluationData | None:
    """The test sets for the saved models, loaded before any grading starts (or None)."""
    if not assignment.config.accuracy or args.tests == "public":
        return None
    from .evaluation import load_data

    return load_data(args.dataset, args.data_dir, args.secret_set, assignment.config.evaluation,
                     with_train=args.retrain)


def cmd_data(args: argparse.Namespace) -> int:
    """Put CIFAR-10 (torchvision) or the synthetic set in CIFAR-10's format where grade looks."""
    from . import datasets

    try:
        if args.which == datasets.CIFAR10:
            folder = datasets.fetch_cifar10(args.root)
            count = len(datasets.load_cifar10_test(args.root).labels)
        else:
            folder = datasets.write_synthetic(args.root)
            count = len(datasets.load_synthetic_test(args.root).labels)
    except datasets.DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.which}: {folder} ({count} test images, checked by torchvision's CIFAR10)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Verify the assignments and grade example submissions of each."""
    from .demo import run_demo

    return run_demo(args.out, args.names or None, args.jobs)


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
    new.add_argument("--title", help="the notebook's heading, in Russian (default: Задание NAME)")
    new.set_defaults(func=cmd_new)

    grade = commands.add_parser("grade", help="grade submissions (.ipynb, folder or .zip)")
    grade.add_argument(
        "--assignment", required=True, help="assignment name, e.g. 01_convolution_pooling"
    )
    grade.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION")
    grade.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    grade.add_argument(
        "--tests",
        choices=["public", "all"],
        default="all",
        help="grade with public tests only, or with public and hidden tests (default: all)",
    )
    grade.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "process"],
        default="auto",
        help="isolation: bubblewrap, plain process with limits, or auto (bwrap when usable)",
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
        "--seed", type=int, help="seed for hidden tests' random inputs (default: drawn)"
    )
    grade.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_ROOT,
                       help=f"folder with cifar10/ or synthetic/ (default: {DEFAULT_DATA_ROOT})")
    grade.add_argument("--dataset", choices=["auto", "cifar10", "synthetic"], default="auto",
                       help="what saved models are graded on (auto: CIFAR-10 when present, "
                       "else the synthetic set)")
    grade.add_argument("--secret-set", type=Path, metavar="DATA.npy",
                       help="a secret test set in CIFAR-10.1's layout, graded beside the "
                       "official one (the synthetic set has its own)")
    grade.add_argument("--retrain", action="store_true",
                       help="also train each model class with the student's own train_epoch "
                       "under the assignment's budget, and flag a large accuracy gap")
    grade.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="where sandboxed models run (auto: CUDA when available)")
    grade.set_defaults(func=cmd_grade)

    data = commands.add_parser(
        "data", help="put CIFAR-10, or a synthetic set in its exact format, where grade looks"
    )
    data.add_argument("which", choices=["cifar10", "synthetic"])
    data.add_argument("--root", type=Path, default=DEFAULT_DATA_ROOT,
                      help=f"folder holding the datasets (default: {DEFAULT_DATA_ROOT})")
    data.set_defaults(func=cmd_data)

    demo = commands.add_parser("demo", help="verify assignments and grade example submissions")
    demo.add_argument("names", nargs="*", help="assignments (default: all)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    demo.add_argument("--jobs", type=_count, default=2, metavar="N", help="submissions at once")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run grader.py with ``argv``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, authoring.AuthoringError, TestFileError, PackageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
