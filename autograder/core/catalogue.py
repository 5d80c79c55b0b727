"""The one catalogue of what students read, in Russian and English (gettext through Babel).

Every sentence a student sees (feedback, messages in results.json, the hidden and public
checks the grader itself writes) is written in the code as an English message inside
:func:`_` and translated through the catalogue:

    from ..core.catalogue import _
    _("expected shape {expected}, got {got}").format(expected=..., got=...)

English is the source language (the messages themselves); each other language has one
gettext catalogue per stage package (a *domain*: ``grading``, ``outputs``, ...) under
``autograder/locale/<language>/LC_MESSAGES/<domain>.po``, read with Babel and joined into
one lookup. The language is chosen per run (``grade --language``, the assignment's
``language``; Russian for the lesson's three) with :func:`use_language`; a message missing
from the catalogue falls back to its English text, and tests/test_catalogue.py proves that
none is missing and that no Cyrillic string is left in the code outside the catalogue.

A table built at import time marks its messages with :func:`N_` and translates each with
:func:`_` where it is used (at import the run's language is not chosen yet).

Placeholders are ``str.format`` fields (``{name}``), kept word for word by a translation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
SOURCE_LANGUAGE = "en"  # the messages in the code
DEFAULT_LANGUAGE = "ru"  # the lesson's language
LANGUAGES = ("ru", "en")
# use_language puts the language here too, so that the processes a batch starts (its
# sandboxed workers, a local Ray's) write in it from their first message
LANGUAGE_ENV = "AUTOGRADER_LANGUAGE"

# one per process: a batch's threads all write in its language
_language = os.environ.get(LANGUAGE_ENV) if os.environ.get(LANGUAGE_ENV) in LANGUAGES \
    else DEFAULT_LANGUAGE


class UnknownLanguage(ValueError):
    """A language without a catalogue."""


def check_language(language: str) -> str:
    """``language`` when there is a catalogue for it; else :class:`UnknownLanguage` naming
    the ones there are."""
    if language not in LANGUAGES:
        raise UnknownLanguage(f"no catalogue for language {language!r}: choose one of "
                              f"{', '.join(LANGUAGES)}")
    return language


def use_language(language: str) -> None:
    """Make ``language`` the language of what this process writes for students from now on
    (a batch sets it once, before its threads start)."""
    global _language
    _language = check_language(language)
    os.environ[LANGUAGE_ENV] = language


def current_language() -> str:
    return _language


@contextmanager
def language_of(language: str) -> Iterator[None]:
    """``language`` while the block runs, then the one before (the course's own material,
    such as the student notebooks, is in the assignment's language whatever language a
    batch's students read)."""
    before = _language
    use_language(language)
    try:
        yield
    finally:
        use_language(before)


@cache
def translations(language: str, domains: tuple[str, ...] | None = None) -> dict[str, str]:
    """The messages of ``language``'s catalogue (every domain, or only ``domains``): English
    text -> translation (the source language maps to itself, i.e. the empty dict)."""
    from babel.messages.pofile import read_po

    table: dict[str, str] = {}
    if language == SOURCE_LANGUAGE:
        return table
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    paths = (sorted(folder.glob("*.po")) if domains is None
             else [folder / f"{domain}.po" for domain in domains])
    for path in paths:
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=path.stem)
        for message in catalog:
            if message.id and message.string and not message.fuzzy:
                table[str(message.id)] = str(message.string)
    return table


def _(message: str) -> str:
    """``message`` in the current language (English when the catalogue lacks it)."""
    return translations(current_language()).get(message, message)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it yet: for tables built at
    import time (translate each entry with :func:`_` where it is used)."""
    return message


def gettext_in(language: str, message: str) -> str:
    """``message`` in ``language``, whatever the process's current language is."""
    return translations(check_language(language)).get(message, message)
