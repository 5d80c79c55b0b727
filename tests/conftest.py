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
