"""Diagnostics of the grader (progress, notes, warnings, errors) go through :mod:`logging`.

Every module that says something on the way writes to its own logger
(``log = logging.getLogger(__name__)``, under the ``autograder`` logger). What a command
prints as its result (a summary line, a table, a path) stays a ``print`` on stdout, so a user
may pipe it; everything else is a log record. A front door (``cli.main``, and the demo and
the Gradescope run when they are called without it) calls :func:`log_to_stderr` once: the
records of INFO and above then appear on stderr as their bare message. Without it the package
logs as a library does: warnings and errors still reach stderr (Python's last resort), the
rest is silent.
"""

from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = "autograder"
MESSAGE_ONLY = "%(message)s"


class CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record comes, not to the
    stream of the moment it was made: a live progress bar's proxy (which keeps the bar below
    the lines), or a test's capture."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)  # no stream of its own to keep

    @property
    def stream(self):  # StreamHandler's attribute, read on every record
        return sys.stderr


def log_to_stderr() -> None:
    """Show the grader's diagnostics (INFO and above) on stderr as their bare message; calling
    it again changes nothing."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    if not any(isinstance(handler, CurrentStderr) for handler in logger.handlers):
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter(MESSAGE_ONLY))
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
