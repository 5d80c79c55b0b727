"""The one catalogue of student-facing text: complete, the only place Russian is written,
and chosen per run (issue 21)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from catalogue_po import PACKAGE, extract

from autograder.core import catalogue
from autograder.core.catalogue import UnknownLanguage, gettext_in, translations

CYRILLIC = re.compile("[\u0400-\u04ff]")
FIELD = re.compile(r"\{[^{}]*\}")


def _string_literals_with_cyrillic(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)) \
                and CYRILLIC.search(token.string):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{token.start[0]}: "
                         f"{token.string[:70]}")
    return found


def test_no_cyrillic_string_literal_is_left_in_the_code_outside_the_catalogue():
    found = [line for path in sorted(PACKAGE.rglob("*.py"))
             for line in _string_literals_with_cyrillic(path)]
    assert not found, ("student-facing text belongs in the catalogue (write the English "
                       "message in _() and its Russian in autograder/locale/ru): "
                       + "\n".join(found[:40]) + f"\n({len(found)} in all)")


def test_the_literal_scan_can_fail(tmp_path):
    path = PACKAGE / "core" / "catalogue.py"
    assert not _string_literals_with_cyrillic(path)
    assert CYRILLIC.search('"ожидалась форма"')


def test_every_message_has_a_russian_translation_with_the_same_fields():
    used = extract()
    assert used, "no _() message found: the extraction is broken"
    russian = translations("ru")
    missing = sorted(m for m in used if m not in russian)
    assert not missing, f"no Russian translation for {len(missing)} message(s): {missing[:10]}"
    for english in used:
        assert sorted(FIELD.findall(english)) == sorted(FIELD.findall(russian[english])), (
            f"the translation of {english!r} changes its fields: {russian[english]!r}")
        assert CYRILLIC.search(russian[english]) or not re.search("[A-Za-z]{3}", english), (
            f"{english!r} is 'translated' to {russian[english]!r}, not Russian")


def test_no_message_is_translated_two_ways_in_two_domains():
    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in sorted((catalogue.LOCALE_DIR / "ru" / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle):
                if not message.id:
                    continue
                earlier = seen.setdefault(message.id, (path.stem, message.string))
                if earlier[1] != message.string:
                    clashes.append(f"{message.id!r}: {earlier} vs {(path.stem, message.string)}")
    assert not clashes, ("one English message, two Russian texts (make the English messages "
                         "differ): " + "; ".join(clashes))


def test_english_is_the_messages_themselves_and_an_unknown_language_is_refused():
    some = next(iter(translations("ru")))
    assert gettext_in("en", some) == some
    assert gettext_in("ru", some) != some
    with pytest.raises(UnknownLanguage, match="ru, en"):
        gettext_in("de", some)


def test_a_process_the_batch_starts_writes_in_its_language():
    some = next(iter(translations("ru")))
    child = "import sys; from autograder.core.catalogue import _; print(_(sys.argv[1]))"
    code = ("import subprocess, sys; from autograder.core.catalogue import use_language\n"
            "use_language(sys.argv[1])\n"
            "print(subprocess.run([sys.executable, '-c', sys.argv[2], sys.argv[3]], "
            "capture_output=True, text=True).stdout, end='')")
    for language in ("ru", "en"):
        done = subprocess.run([sys.executable, "-c", code, language, child, some],
                              capture_output=True, text=True, cwd=PACKAGE.parent, check=True)
        assert done.stdout.strip() == gettext_in(language, some).strip(), done.stderr
    assert catalogue.current_language() == catalogue.DEFAULT_LANGUAGE
