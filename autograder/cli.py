"""Command line: parse arguments, call one function per command, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import authoring
from .assignments import PROJECT_ROOT, ConfigError, discover, load_assignment

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run grader.py with ``argv``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, authoring.AuthoringError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
