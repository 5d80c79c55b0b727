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


_OPENED: dict[Path, int] = {}  # folder -> its mode before the suite opened it


def pytest_configure(config) -> None:
    """As root, a clone in a private folder (root's home, a fresh 0700 temporary folder)
    keeps the uid level's workers from reaching the interpreter and the project: the suite
    lets other users *enter* (o+x, not list) each closed folder on the way while it runs,
    says so in its header, and gives every folder its mode back at the end."""
    if os.geteuid() != 0:
        return
    from autograder.sandbox import uid as uid_level

    for folder in uid_level.closed_folders():
        mode = folder.stat().st_mode & 0o7777
        os.chmod(folder, mode | 0o001)
        _OPENED[folder] = mode


def pytest_unconfigure(config) -> None:
    for folder, mode in _OPENED.items():
        os.chmod(folder, mode)
    _OPENED.clear()


def pytest_report_header(config) -> list[str]:
    """At the suite's start: which isolation levels it tests here, and why any is not."""
    from autograder.sandbox import SandboxLevel, launcher

    lines = [f"opened for the uid level's workers while the suite runs (o+x: enter, not list; "
             f"mode restored at the end): {folder} (was {mode:o})"
             for folder, mode in _OPENED.items()]
    for level in SandboxLevel:
        problem = launcher.level_problem(level)
        lines.append(f"isolation level {level.value}: "
                     + ("tested here" if problem is None else f"NOT tested here: {problem}"))
    return lines
