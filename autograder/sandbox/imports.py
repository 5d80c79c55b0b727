"""Inside the worker: packages this assignment lacks, and a clear message when one is imported.

Under bubblewrap the packages are not there at all (the launcher builds a site-packages view
with only the allowed distributions); here we only turn Python's "No module named ..." into a
sentence for the student. In the process fallback the files do exist, so the ``blocked`` names
are refused by a finder placed first on ``sys.meta_path``: hygiene that a determined student can
undo, which the results say (weaker isolation).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from typing import Any


def unavailable_message(name: str, allowed: Sequence[str]) -> str:
    """The student-facing text (Russian, the course's language) for a missing package."""
    listed = ", ".join(sorted(allowed)) if allowed else "ничего, кроме неё"
    return (
        f"пакет {name} недоступен в этом задании: здесь можно импортировать "
        f"стандартную библиотеку Python и {listed}"
    )


def explain(exc: BaseException, allowed: Sequence[str] | None) -> str | None:
    """The student-facing message for a failed import of a package outside ``allowed``."""
    if allowed is None or not isinstance(exc, ModuleNotFoundError):
        return None
    name = getattr(exc, "name", None)
    if not isinstance(name, str) or not name:
        return None
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names:
        return None
    return unavailable_message(top, allowed)


class _RefusingLoader(importlib.abc.Loader):
    def __init__(self, message: str):
        self.message = message

    def create_module(self, spec: Any) -> None:
        raise ModuleNotFoundError(self.message, name=spec.name)

    def exec_module(self, module: Any) -> None:  # never reached: create_module raises
        raise ModuleNotFoundError(self.message, name=module.__name__)


class _Refuse(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: blocked top-level packages load as an import error."""

    def __init__(self, allowed: tuple[str, ...], blocked: frozenset[str]):
        self.allowed, self.blocked = allowed, blocked

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        top = fullname.partition(".")[0]
        if top not in self.blocked:
            return None  # let the other finders decide
        loader = _RefusingLoader(unavailable_message(top, self.allowed))
        return importlib.machinery.ModuleSpec(fullname, loader)


def install_import_guard(allowed: Sequence[str], blocked: Sequence[str]) -> None:
    """Refuse ``blocked`` top-level packages (needed only where their files are visible)."""
    if blocked:
        sys.meta_path.insert(0, _Refuse(tuple(sorted(allowed)), frozenset(blocked)))
