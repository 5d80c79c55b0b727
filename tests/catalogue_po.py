"""Reading and writing the catalogue's .po files (Babel), for its test and for maintainers.

    python tests/catalogue_po.py extract          # every _() message in autograder/ (code and
                                                  # templates), by file
    python tests/catalogue_po.py missing          # messages with no Russian translation

To add translations from code, ``add(domain, {english: russian, ...})`` merges them into
``autograder/locale/ru/LC_MESSAGES/<domain>.po`` (created if missing), sorted, so that two
people adding to different domains never touch the same file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "autograder"
LOCALE = PACKAGE / "locale"


def po_path(domain: str, language: str = "ru") -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{domain}.po"


def read(domain: str, language: str = "ru") -> Catalog:
    path = po_path(domain, language)
    if not path.is_file():
        return Catalog(locale=language, domain=domain, project="cnn-autograder")
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=domain)


def add(domain: str, messages: dict[str, str], language: str = "ru") -> Path:
    """Merge ``messages`` (English -> translation) into the domain's catalogue."""
    catalog = read(domain, language)
    for english, translated in messages.items():
        catalog.add(english, translated, flags=("python-brace-format",) if "{" in english
                    else ())
    path = po_path(domain, language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=0, sort_output=True, omit_header=False,
                 no_location=True)
    return path


def extract() -> dict[str, list[str]]:
    """Every message the code and the templates (autograder/templates/, Jinja2's Babel
    extractor) pass to ``_`` (a literal), with the files that use it."""
    found: dict[str, list[str]] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
            str(PACKAGE), method_map=[("**.py", "python"), ("templates/**", "jinja2")],
            keywords={"_": None, "N_": None}):
        if isinstance(message, str) and message:
            found.setdefault(message, []).append(filename)
    return found


def main(argv: list[str]) -> int:
    from autograder.core.catalogue import translations

    used = extract()
    if argv[:1] == ["extract"]:
        for message, files in sorted(used.items()):
            print(f"{sorted(set(files))}: {message!r}")
        return 0
    missing = [m for m in used if m not in translations("ru")]
    for message in missing:
        print(f"no Russian for {message!r} ({', '.join(sorted(set(used[message])))})")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
