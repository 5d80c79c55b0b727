"""``grader.py gradescope NAME [--out DIR]``: a Gradescope autograder zip for one assignment.

Gradescope's autograder specification (gradescope-autograders.readthedocs.io, "Autograder
Specifications"): the zip has ``setup.sh`` (run once, as root, when the image is built) and
``run_autograder`` at its root; its contents are unpacked into ``/autograder/source``; each
submission is put in ``/autograder/submission``; ``run_autograder`` runs with ``/autograder`` as
working directory and must write ``/autograder/results/results.json`` (the schema our
``results.json`` already follows). Students never see the zip, so it holds all tests, hidden
ones included; it never holds the master notebook (:mod:`.bundles`).

Gradescope runs the autograder as root in a Docker container in which bubblewrap usually
cannot create namespaces, so ``grade --sandbox auto`` takes the uid level there (each worker
as an unprivileged uid, confined by Landlock where the kernel has it), and the process level
only where even that cannot run. Every result says which level was used and why the stronger
ones were not; ``setup.sh`` says it when the image is built.

``run_autograder`` takes the root from ``AUTOGRADER_ROOT`` (default ``/autograder``) and the
interpreter from ``AUTOGRADER_PYTHON`` (default the bundle's own venv), so it runs locally;
``AUTOGRADER_SANDBOX`` (``auto``, ``bwrap``, ``uid`` or ``process``; default ``auto``) is passed
to ``grade --sandbox``: a named level refuses to grade where it cannot run rather than fall
back.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..batch.entry import GradeRequest, grade_class
from ..core.assignments import Assignment, load_assignment
from ..core.catalogue import _
from ..core.errors import exit_status
from ..core.logs import log_to_stderr
from ..outputs.layout import RESULTS, submission_dirs
from ..sandbox.launcher import LEVEL_NAMES, SANDBOX_ENV
from .bundles import TORCH_PIN, PackagingError, bundle_files, check_fresh, grader_files

log = logging.getLogger(__name__)

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same inputs give the same zip
DATA_DIR = "data"  # under /autograder/source: CIFAR-10 for the accuracy questions

_SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image for {name}.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SOURCE="${{AUTOGRADER_ROOT:-/autograder}}/source"

apt-get update -qq
# bubblewrap is the sandbox; util-linux has prlimit and setpriv (the uid level's tools);
# libseccomp2 builds the system-call filter every bwrap and uid worker loads.
apt-get install -y -qq bubblewrap util-linux libseccomp2
# The grader needs Python >= 3.11 (Ubuntu 22.04's python3 is 3.10).
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PY=python3
    apt-get install -y -qq python3-venv
else
    apt-get install -y -qq python3.11 python3.11-venv
    PY=python3.11
fi
"$PY" -m venv "$SOURCE/.venv"
"$SOURCE/.venv/bin/python" -m pip install --quiet --upgrade pip
# torch >= 2.10: torch.load(weights_only=True) without the known escapes (CVE-2025-32434,
# CVE-2026-24747); the CPU build.
"$SOURCE/.venv/bin/python" -m pip install --quiet {torch_pin} \\
    --index-url https://download.pytorch.org/whl/cpu
"$SOURCE/.venv/bin/python" -m pip install --quiet -r "$SOURCE/requirements.txt"
{data_step}
# Workers of the uid level run as unprivileged uids: they must be able to start this Python.
chmod -R o+rX "$SOURCE/.venv"
cd "$SOURCE"
echo "Isolation level for grading here (the strongest that works):"
"$SOURCE/.venv/bin/python" -c 'from autograder.sandbox.launcher import choose_isolation as c; \\
print("  " + c("auto").one_line())'
echo "bwrap: full isolation. uid: each worker as an unprivileged uid, confined by Landlock"
echo "where the kernel has it (hidden tests unreadable, no signals outside) and a system-call"
echo "filter (no sockets, no SysV IPC, no ptrace). process:"
echo "the weaker process isolation (limits only; student code can read this bundle). See"
echo "README.md in this bundle."
"""

_RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission of {name}: grades /autograder/submission with all
# tests (hidden ones included) and writes /autograder/results/results.json.
# AUTOGRADER_ROOT and AUTOGRADER_PYTHON override the root and the interpreter (local runs);
# AUTOGRADER_SANDBOX=bwrap|uid|process|auto is grade's --sandbox (default auto).
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
PYTHON="${{AUTOGRADER_PYTHON:-$SOURCE/.venv/bin/python}}"
cd "$SOURCE" || exit 1
exec "$PYTHON" grader.py run-gradescope "$ROOT" {name}
"""

_README = """\
# Gradescope autograder for {name}

Made by `python grader.py gradescope {name}`. Upload this zip as the assignment's autograder
("Zip file upload"; the Ubuntu 22.04 or 24.04 base image). `setup.sh` installs Python 3.11,
the CPU build of PyTorch, the grader's requirements and bubblewrap{data_note}.
`run_autograder` grades `/autograder/submission` (the notebook and any files beside it, or one
`.zip` of them) with **all tests, hidden ones included**, and writes
`/autograder/results/results.json`.

This bundle holds the hidden tests but no master notebook and no reference solution. Keep it
private: whoever has it has the hidden tests.

## Isolation on Gradescope

Gradescope runs the autograder as root in a Docker container where bubblewrap usually cannot
create the namespaces it needs. `grade --sandbox auto` then takes the **uid level**: each
submission's code runs as an unprivileged uid of its own, with the same CPU, memory, process
and output limits and deadlines, in a private folder; where the kernel has Landlock (Linux
5.13 and later; TCP from 6.7, signals from 6.12) a ruleset keeps it from reading this bundle
(the hidden tests), from opening TCP connections and from signalling anything outside its
sandbox, and a system-call filter refuses every socket (MPTCP, UDP, netlink, Unix; only
socket pairs stay), SysV IPC, ptrace, io_uring and new namespaces. After each submission
every process of its uid is killed and its IPC objects removed before the uid is used again.
Where even that cannot run, the **process level** applies: limits only, and student
code runs as the grader's user, so it can read this bundle, use the network and stop the
grader (the submission is then failed, not graded again). Scores are always computed in the
grader's own process from data only. `setup.sh` prints which level the image gets; every
`results.json` records the level and why stronger ones were not used
(`extra_data.isolation`). What each level does not contain is listed in the grader's README.

To insist on a level (no grade rather than a weaker one), set `AUTOGRADER_SANDBOX=bwrap` or
`uid` for `run_autograder`; `process` forces the weakest; the default is `auto`.

Local run: unpack the zip into `ROOT/source`, put a submission into `ROOT/submission`, and run
`AUTOGRADER_ROOT=ROOT AUTOGRADER_PYTHON=python3.11 ROOT/source/run_autograder` (the
interpreter needs the grader's requirements and PyTorch).
"""


def bundle_zip_files(assignment: Assignment) -> dict[str, bytes]:
    """Every file of the Gradescope zip by path (setup.sh and run_autograder at the root)."""
    accuracy = bool(assignment.config.accuracy)
    data_step = (f'"$SOURCE/.venv/bin/python" "$SOURCE/grader.py" data cifar10 --root '
                 f'"$SOURCE/{DATA_DIR}"' if accuracy else "")
    data_note = (" and downloads CIFAR-10 (torchvision) for the accuracy questions"
                 if accuracy else "")
    files = {
        "setup.sh": _SETUP_SH.format(name=assignment.name, data_step=data_step,
                                     torch_pin=TORCH_PIN).encode(),
        "run_autograder": _RUN_AUTOGRADER.format(name=assignment.name).encode(),
        "README.md": _README.format(name=assignment.name, data_note=data_note).encode(),
    }
    files.update(grader_files())
    files.update(bundle_files(assignment, "all"))
    return files


def build_zip(assignment: Assignment, out_dir: Path) -> Path:
    """Write ``out_dir/<name>-gradescope.zip``; returns its path."""
    if assignment.question_names is not None:
        raise PackagingError(f"{assignment.name} is already a packaged copy; build the bundle "
                             "from the course repository")
    check_fresh(assignment)
    files = bundle_zip_files(assignment)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{assignment.name}-gradescope.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel, content in sorted(files.items()):
            info = zipfile.ZipInfo(rel, date_time=ZIP_DATE)
            mode = 0o755 if rel in ("setup.sh", "run_autograder", "grader.py") else 0o644
            info.external_attr = (0o100000 | mode) << 16  # a regular file with this mode
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return path


def _target(submission_dir: Path) -> Path | None:
    """What to grade: the submission folder, or the one .zip in it; None when it is empty."""
    entries = [p for p in submission_dir.iterdir() if not p.name.startswith(".")]
    notebooks = list(submission_dir.rglob("*.ipynb"))
    zips = [p for p in entries if p.suffix == ".zip" and p.is_file()]
    if not notebooks and len(zips) == 1:
        return zips[0]
    return submission_dir if notebooks else None


def _fallback(results: Path, message: str, details: dict) -> None:
    """results.json when grading produced none: 0 points and what to do, for the student."""
    document = {"score": 0, "output": message, "output_format": "text",
                "stdout_visibility": "hidden", "tests": [], "extra_data": details}
    results.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n",
                       encoding="utf-8")


def run_autograder(root: Path, name: str, sandbox: str) -> int:
    """Grade ``root/submission`` with all tests through :func:`~..batch.entry.grade_class`;
    write ``root/results/results.json`` (for the student, with no machine detail when grading
    could not finish: the reason goes to stderr, which Gradescope shows the instructor)."""
    log_to_stderr()  # called without cli.main too (its diagnostics are log records)
    source, results = root / "source", root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    choices = ("auto", *LEVEL_NAMES)
    if sandbox not in choices:
        _fallback(results, _("The autograder is set up wrongly (not your fault); your "
                             "instructor will see the details."),
                  {"status": "error", "reason": f"{SANDBOX_ENV}={sandbox}"})
        log.error(f"{SANDBOX_ENV} must be one of {', '.join(choices)}, not {sandbox!r}")
        return 1
    target = _target(root / "submission")
    if target is None:
        _fallback(results, _("Your submission has no .ipynb notebook. Upload {notebook} (and "
                             "the files it saved, if the assignment needs them) or a single .zip "
                             "with them.").format(notebook=f"{name}.ipynb"),
                  {"status": "error", "reason": "no notebook in the submission"})
        return 0
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        out = Path(tmp) / "out"
        data_dir = source / DATA_DIR if (source / DATA_DIR).is_dir() else None
        code = _grade(GradeRequest(name, (target,), out, sandbox=sandbox, data_dir=data_dir))
        produced = [folder / RESULTS for folder in submission_dirs(out)
                    if (folder / RESULTS).is_file()]
        if len(produced) == 1:
            shutil.copyfile(produced[0], results)
            return 0
        _fallback(results, _("The autograder could not check your work (a failure of the "
                             "grading system, not your fault); your instructor will see the "
                             "details."),
                  {"status": "error", "grader_exit": code, "results_found": len(produced)})
        log.error(f"grade exited {code} and wrote {len(produced)} results.json file(s); see "
                  "the messages above")
        return 1


def _grade(request: GradeRequest) -> int:
    """0 graded; 2 the set-up's mistake (said on stderr); 1 a grader bug (its traceback on
    stderr, which Gradescope shows the instructor, never the student)."""

    def grade() -> int:
        log.info(grade_class(request).one_line())
        return 0

    return exit_status(grade, traceback_to_stderr=True)


def cmd_gradescope(args: argparse.Namespace) -> int:
    """Build the Gradescope autograder zip of one assignment (all tests)."""
    assignment = load_assignment(args.name)  # its errors: cli.main's one mapping
    path = build_zip(assignment, args.out)
    print(f"{assignment.name}: Gradescope autograder in {path} (all tests, hidden ones "
          "included; no master notebook). Keep it private.")
    log.info("Note: on Gradescope bubblewrap usually cannot create namespaces, so submissions "
             "are graded at the uid level (an unprivileged uid per worker, Landlock where the "
             "kernel has it), or with the weaker process isolation where that cannot run (see "
             "README.md in the zip).")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``gradescope`` command to grader.py's parser."""
    parser = commands.add_parser(
        "gradescope", help="build a Gradescope autograder zip (all tests; the uid level or "
        "weaker isolation there, see its README)")
    parser.add_argument("name", help="assignment, e.g. 01_convolution_pooling")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="folder for NAME-gradescope.zip (default: out)")
    parser.set_defaults(func=cmd_gradescope)
