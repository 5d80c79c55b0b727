"""Inside the worker: packages this assignment lacks, and a clear message when one is imported.

Under bubblewrap the packages are not there at all (the launcher builds a site-packages view
with only the allowed distributions); here we only turn Python's "No module named ..." into a
sentence for the student. In the process fallback the files do exist, so the ``blocked`` names
are hidden from every finder on ``sys.meta_path`` (not found, exactly as if absent): hygiene
that a determined student can undo, which the results say (weaker isolation). At the uid
level a Landlock ruleset also makes their files unreadable, so undoing it gains nothing.

It also translates what the worker writes for the student (here and in ``models.py``). The
worker cannot read the grader's catalogue: it sees only this package, and Babel is not among
an assignment's packages. So the launcher hands it, through its environment, the grader's
language and the translations of the worker's own domains (:func:`worker_environment`, run on
the grader's side); nothing flows back.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

LANGUAGE_ENV = "AUTOGRADER_LANGUAGE"  # the grader's language (core/catalogue.LANGUAGE_ENV)
MESSAGES_ENV = "AUTOGRADER_WORKER_MESSAGES"  # JSON: English message -> its translation
WORKER_DOMAINS = ("sandbox.imports", "sandbox.models")  # the catalogues of what the worker writes


def worker_environment() -> dict[str, str]:
    """Grader side: the variables that give a worker the grader's language (the process's,
    :func:`~..core.catalogue.current_language`, which starts from ``AUTOGRADER_LANGUAGE``) and
    the translations of :data:`WORKER_DOMAINS` in it."""
    from ..core.catalogue import current_language

    language = current_language()
    return {LANGUAGE_ENV: language, MESSAGES_ENV: _domain_messages(language)}


@functools.cache
def _domain_messages(language: str) -> str:
    """The translations of the worker's domains into ``language``, as JSON (ASCII)."""
    from ..core.catalogue import translations

    return json.dumps(translations(language, WORKER_DOMAINS), sort_keys=True)


@functools.cache
def _worker_messages() -> dict[str, str] | None:
    """The translations the launcher handed this worker (None: not in a worker)."""
    text = os.environ.get(MESSAGES_ENV)
    if text is None:
        return None
    try:
        table = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(k, str) and isinstance(v, str)}


def _(message: str) -> str:
    """``message`` in the grader's language: in a worker from the translations its launcher
    handed it, elsewhere from the catalogue itself."""
    table = _worker_messages()
    if table is None:
        from ..core.catalogue import _ as translate

        return translate(message)
    return table.get(message, message)


def unavailable_message(name: str, allowed: Sequence[str]) -> str:
    """The student-facing text (in the grader's language) for a missing package."""
    listed = ", ".join(sorted(allowed)) if allowed else _("nothing else")
    return _("package {name} is not available in this assignment: here you may import the "
             "Python standard library and {listed}").format(name=name, listed=listed)


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
