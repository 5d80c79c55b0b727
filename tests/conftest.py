"""Shared pytest set-up: headless plotting, and the list of assignments."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
