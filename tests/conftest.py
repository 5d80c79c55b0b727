"""Shared pytest set-up: headless plotting, and the synthetic CIFAR-10 set for model tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A data folder holding the synthetic set, written by `grader.py data synthetic`."""
    root = tmp_path_factory.mktemp("data")
    subprocess.run(
        [sys.executable, str(PROJECT / "grader.py"), "data", "synthetic", "--root", str(root)],
        check=True, capture_output=True, timeout=600,
    )
    return root


def confining_level() -> tuple[str | None, str]:
    """The strongest level here that keeps hostile code off the grader's files and the
    network (bwrap, else uid with Landlock), or None with why neither can run."""
    from autograder.sandbox import launcher
    from autograder.sandbox import uid as uid_level

    bwrap = launcher.bwrap_problem()
    if bwrap is None:
        return "bwrap", ""
    uid = uid_level.uid_problem() or (None if uid_level.landlock_abi() >= 4 else
                                       "no Landlock ABI >= 4 here")
    if uid is None:
        return "uid", ""
    return None, (f"hostile code runs only where it is confined (bwrap: {bwrap}; uid: {uid}); "
                  "apt-get install -y bubblewrap, or run as root on a kernel with Landlock")


def pytest_report_header(config) -> list[str]:
    """At the suite's start: which isolation levels it tests here, and why any is not."""
    from autograder.sandbox import SandboxLevel, launcher

    lines = []
    for level in SandboxLevel:
        problem = launcher.level_problem(level)
        lines.append(f"isolation level {level.value}: "
                     + ("tested here" if problem is None else f"NOT tested here: {problem}"))
    return lines
