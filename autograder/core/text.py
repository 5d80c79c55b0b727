"""Text from a submission made safe for the instructor's terminal.

A file name, an id, a message or a line of a student's code may hold bytes that a terminal
obeys rather than shows: ESC and the ANSI/OSC sequences it starts (erase the line, fake green
text, set the window title), BEL, backspace and carriage return (overwrite what was printed),
the C1 controls U+0080-U+009F (CSI on its own), and the bidirectional overrides U+202A-U+202E
and U+2066-U+2069 (text that reads differently from what it is). :func:`visible` writes each
such character as an escape (``\\x1b``, ``\\u202e``) so that it is seen, not obeyed. Every
print of submission-derived text goes through it; files on disk keep the text as it was (the
HTML writers escape for HTML, the gradebook for spreadsheets).
"""

from __future__ import annotations

import re
import unicodedata

# Categories a terminal may obey or that print as nothing: controls (Cc), format characters
# (Cf: bidi overrides and isolates, zero-width marks), lone surrogates (Cs: an undecodable
# file name; print would raise), line and paragraph separators (Zl, Zp).
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_CANDIDATE = re.compile(r"[^\x20-\x7e]")  # printable ASCII is never hidden


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def visible(text: object, *, newlines: bool = True) -> str:
    """``text`` with every control, format and separator character written as an escape.

    ``newlines``: keep ``\\n`` as a line break (a multi-line listing); False escapes it too
    (one line that must stay one line, such as a progress line). Tabs are kept.
    """
    kept = "\t\n" if newlines else "\t"

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char in kept or unicodedata.category(char) not in _HIDDEN:
            return char
        return _escape(char)

    return _CANDIDATE.sub(replace, str(text))
