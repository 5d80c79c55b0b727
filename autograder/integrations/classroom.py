"""``grader.py classroom NAME --out DIR``: the template of a student's repository for GitHub
Classroom.

The kit holds the student notebook, ``.github/workflows/grade.yml`` (``ci/github/student.yml``
with the assignment's name filled in) and ``.grader/``: the grader and the assignment packaged
with its public tests only (:mod:`.bundles`). No master notebook, no hidden case and no
reference solution goes into it, and the kit's grader refuses ``--tests all``.

The points a kit's workflow reports are the public tests' points computed in the student's own
repository, which the student controls (workflow, grader copy and all): they are feedback, not
a grade. Grades come from the instructor's grader with the hidden tests.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.assignments import PROJECT_ROOT, Assignment, load_assignment
from ..core.templates import render
from .bundles import (
    PackagingError,
    bundle_files,
    check_fresh,
    empty_folder,
    grader_files,
    write_tree,
)

log = logging.getLogger(__name__)

WORKFLOW_TEMPLATE = PROJECT_ROOT / "ci" / "github" / "student.yml"
PLACEHOLDER = "__ASSIGNMENT__"
KIT_GRADER_DIR = ".grader"
WORKFLOW_PATH = ".github/workflows/grade.yml"
OUT_DIR = ".grader-out"  # where the workflow writes the results (ignored by git)

README_TEMPLATE = "classroom_readme.md.j2"  # under autograder/templates/

_GITIGNORE = """\
{out}/
tests/
data/
__pycache__/
.ipynb_checkpoints/
"""


def workflow_text(name: str) -> str:
    """ci/github/student.yml with the assignment's name in place of the placeholder."""
    template = WORKFLOW_TEMPLATE.read_text(encoding="utf-8")
    if template.count(PLACEHOLDER) != 1:
        raise PackagingError(
            f"{WORKFLOW_TEMPLATE} must contain {PLACEHOLDER} exactly once (the assignment's name)"
        )
    return template.replace(PLACEHOLDER, name)


def readme_text(name: str) -> str:
    """The kit's README.md, for the student (in the run's language)."""
    return render(README_TEMPLATE, assignment=name, notebook=f"{name}.ipynb", out=OUT_DIR,
                  feedback=f"{OUT_DIR}/submissions/{name}/feedback.md")


def kit_files(assignment: Assignment) -> dict[str, bytes]:
    """Every file of the kit by path relative to the repository's root."""
    notebook = assignment.student_notebook
    if not notebook.is_file():
        raise PackagingError(f"no student notebook {notebook}; run `python grader.py assign "
                             f"{assignment.name}`")
    files = {f"{assignment.name}.ipynb": notebook.read_bytes(),
             WORKFLOW_PATH: workflow_text(assignment.name).encode("utf-8"),
             "README.md": readme_text(assignment.name).encode("utf-8"),
             ".gitignore": _GITIGNORE.format(out=OUT_DIR).encode("utf-8")}
    packaged = {**grader_files(), **bundle_files(assignment, "public")}
    files.update({f"{KIT_GRADER_DIR}/{rel}": content for rel, content in packaged.items()})
    return files


def build_kit(assignment: Assignment, out: Path) -> list[str]:
    """Write the kit into ``out`` (new or empty); returns the files written."""
    empty_folder(out)
    if not assignment.has_hidden_tests or assignment.question_names is not None:
        raise PackagingError(f"{assignment.name} is already a packaged copy; make the kit from "
                             "the course repository")
    check_fresh(assignment)
    files = kit_files(assignment)
    write_tree(files, out, frozenset({f"{KIT_GRADER_DIR}/grader.py"}))
    return sorted(files)


def cmd_classroom(args: argparse.Namespace) -> int:
    """Write a student repository template for GitHub Classroom (public tests only)."""
    assignment = load_assignment(args.name)  # its errors: cli.main's one mapping
    written = build_kit(assignment, args.out)
    tests = [f for f in written if "/tests/" in f]
    print(f"{assignment.name}: student kit in {args.out} ({len(written)} files, "
          f"{len(tests)} public test files, no hidden tests, no master notebook)")
    log.info("Push it to a template repository and use that repository in the GitHub "
             "Classroom assignment; the workflow grades each push with the public tests.")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``classroom`` command to grader.py's parser."""
    parser = commands.add_parser(
        "classroom", help="write a student repository template for GitHub Classroom "
        "(public tests only; no hidden tests, no solutions)")
    parser.add_argument("name", help="assignment, e.g. 01_convolution_pooling")
    parser.add_argument("--out", type=Path, required=True,
                        help="a new or empty folder for the repository template")
    parser.set_defaults(func=cmd_classroom)
