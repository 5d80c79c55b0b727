"""Inside the worker: packages this assignment lacks, and a clear message when one is imported.

Under bubblewrap the packages are not there at all (the launcher builds a site-packages view
with only the allowed distributions); here we only turn Python's "No module named ..." into a
sentence for the student. In the process fallback the files do exist, so the ``blocked`` names
are hidden from every finder on ``sys.meta_path`` (not found, exactly as if absent): hygiene
that a determined student can undo, which the results say (weaker isolation). At the uid
level a Landlock ruleset also makes their files unreadable, so undoing it gains nothing.
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


class _Hiding(importlib.abc.MetaPathFinder):
    """Wraps one finder of ``sys.meta_path`` so that blocked top-level packages are not found.

    Not found, rather than found and failing: libraries probe optional dependencies with
    ``importlib.util.find_spec(name) is not None`` and then import them (torch does so for
    dill), so a spec that raises on import would break allowed packages. An import of a
    blocked name therefore ends as Python's own ModuleNotFoundError, which :func:`explain`
    turns into the same sentence the student gets under bubblewrap.
    """

    def __init__(self, inner: Any, blocked: frozenset[str]):
        self._inner, self._blocked = inner, blocked

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] in self._blocked:
            return None
        find = getattr(self._inner, "find_spec", None)
        return find(fullname, path, target) if find is not None else None

    def __getattr__(self, name: str) -> Any:  # invalidate_caches, find_distributions, ...
        return getattr(self._inner, name)


def install_import_guard(allowed: Sequence[str], blocked: Sequence[str]) -> None:
    """Hide ``blocked`` top-level packages from every finder that reads files (needed only
    where their files are visible: the process and uid levels).

    ``allowed`` is kept for the message (see :func:`explain`); the built-in and frozen
    importers are left alone, they never hold third-party packages.
    """
    if not blocked:
        return
    names = frozenset(blocked)
    sys.meta_path[:] = [
        finder if finder in (importlib.machinery.BuiltinImporter,
                             importlib.machinery.FrozenImporter) else _Hiding(finder, names)
        for finder in sys.meta_path
    ]
