"""A virtual environment reached through a symbolic link (``.venv -> /elsewhere/venv``) grades
under bubblewrap: the sandbox binds and starts the interpreter where it really is."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import nbformat
import pytest
from local_run import built

from autograder.core.assignments import PROJECT_ROOT
from autograder.sandbox.launcher import bwrap_problem

NAME = "01_convolution_pooling"


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the suite does not run in a venv")
def test_a_venv_behind_a_symlink_grades_under_bwrap(tmp_path):
    problem = bwrap_problem()
    if problem is not None:
        pytest.skip(f"bubblewrap is not usable here: {problem}")
    link = tmp_path / "venv-link"
    link.symlink_to(os.path.realpath(sys.prefix), target_is_directory=True)
    python = link / "bin" / "python"
    prefix = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert prefix == str(link), "the interpreter should see the venv at the link's path"
    notebook = tmp_path / "reference.ipynb"
    nbformat.write(built(NAME).reference_notebook, notebook)

    done = subprocess.run(
        [str(python), str(PROJECT_ROOT / "grader.py"), "grade", "--assignment", NAME,
         str(notebook), "--out", str(tmp_path / "out"), "--sandbox", "bwrap", "--tests",
         "public"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed to execute" not in done.stdout + done.stderr
    with (tmp_path / "out" / "gradebook.csv").open(encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert row["status"] == "graded" and float(row["score"]) == float(row["max_score"]) > 0
