"""Similarity flags for the instructor: near-identical answer cells and identical weights files.

Evidence for a person to look at, never a penalty. After a submission is graded, the driver
writes ``OUT/submissions/<id>/fingerprint.json`` (:func:`write_fingerprint`); the class report
reads every fingerprint and pairs the submissions (:func:`similar_pairs`).

A fingerprint reads the notebook as data (JSON, through :mod:`..grading.submission`) in the trusted
process and never runs it. Answer cells are the code cells that differ from the student stub
after normalisation: names the notebook binds (variables, parameters, functions, classes,
attributes it assigns, import aliases) become ``ID``, numbers ``NUM``, strings ``STR``;
comments, blank lines and spacing go (Python's tokenize; a cell that does not tokenize keeps
its words with whitespace collapsed). Each answer cell keeps a hash of its normalised tokens
and the set of its 5-token shingles, less the shingles the stub itself has (the skeleton
everyone shares); cells with fewer than :data:`MIN_SHINGLES` left are too small to say
anything. Two cells are near-identical at Jaccard similarity >= :data:`NEAR`. Weights files
(``*.pt``, ``*.pth``) are compared by sha256. Every size is capped: a hostile notebook gives
a smaller fingerprint or an empty one with the reason, never an error.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import json
import keyword
import math
import tempfile
import tokenize
import zlib
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nbformat

from ..core.atomic import atomic_write
from ..grading.submission import (
    SubmissionError,
    gradable_cells,
    load_submission,
    parse_notebook,
    submission_id,
)
from .layout import FINGERPRINT, submission_dirs, submission_file

VERSION = 1
SHINGLE = 5  # tokens per shingle
NEAR = 0.9  # Jaccard similarity from which two answer cells are "near-identical"
MIN_SHINGLES = 30  # answer cells with fewer distinct non-stub shingles are not compared
MAX_CELLS = 400  # code cells read per notebook
MAX_CELL_CHARS = 20_000  # a longer cell is cut here
MAX_TOTAL_CHARS = 1_000_000  # code read per notebook
MAX_SNIPPET_CHARS = 4_000  # source and normalised text kept for side-by-side display
MAX_FINGERPRINT_BYTES = 64 * 2**20  # a larger fingerprint.json is not read
WEIGHT_SUFFIXES = (".pt", ".pth")
MAX_WEIGHT_FILES = 20
MIN_WEIGHT_BYTES = 64  # an empty or near-empty file matches everything: not compared

ID, NUM, STR = "ID", "NUM", "STR"
_NEWLINE, _INDENT, _DEDENT = "<NEWLINE>", "<INDENT>", "<DEDENT>"
_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_FSTRING_PARTS = {getattr(tokenize, n) for n in ("FSTRING_MIDDLE", "FSTRING_END")
                  if hasattr(tokenize, n)}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_KEPT_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))


@dataclass(frozen=True)
class CellMatch:
    """Two answer cells that are near-identical (cells are 0-based notebook positions)."""

    cell_a: int
    cell_b: int
    similarity: float
    source_a: str
    source_b: str
    normalised_a: str
    normalised_b: str


@dataclass(frozen=True)
class Pair:
    """Two submissions with near-identical answer cells and/or identical weights files."""

    a: str
    b: str
    cells: tuple[CellMatch, ...]
    weights: tuple[tuple[str, str], ...]  # (file in a, file in b) with the same sha256

    @property
    def strength(self) -> tuple[int, int, float]:
        """For sorting: more matched cells, then weights, then higher similarity first."""
        best = max((m.similarity for m in self.cells), default=0.0)
        return (len(self.cells), len(self.weights), best)


# ----------------------------------------------------------------------------- normalising


def _without_magics(source: str) -> str:
    """Drop IPython's shell and magic lines (``!pip ...``, ``%matplotlib ...``)."""
    return "\n".join(line for line in source.splitlines()
                     if not line.lstrip().startswith(("!", "%")))


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def bound_names(sources: Iterable[str]) -> frozenset[str]:
    """Names the code binds: targets, parameters, defs, classes, assigned attributes, imports."""
    names: set[str] = set()
    for source in sources:
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
    return frozenset(names - _KEPT_NAMES)


def _token(tok: tokenize.TokenInfo, bound: frozenset[str]) -> str | None:
    kind = tok.type
    if kind in _SKIPPED or kind in _FSTRING_PARTS:
        return None
    if kind == tokenize.NAME:
        return ID if tok.string in bound else tok.string
    if kind == tokenize.NUMBER:
        return NUM
    if kind == tokenize.STRING or kind == _FSTRING_START:
        return STR
    if kind == tokenize.NEWLINE:
        return _NEWLINE
    if kind == tokenize.INDENT:
        return _INDENT
    if kind == tokenize.DEDENT:
        return _DEDENT
    return tok.string


def normalise(source: str, bound: frozenset[str]) -> list[str]:
    """The cell's tokens with names, literals, comments and spacing normalised.

    A cell that does not tokenize falls back to its words, whitespace collapsed, line by line.
    """
    code = _without_magics(source)
    try:
        tokens = [t for t in (_token(tok, bound) for tok in
                              tokenize.generate_tokens(io.StringIO(code).readline))
                  if t is not None]
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError):
        tokens = []
        for line in code.splitlines():
            words = line.split()
            tokens += [*words, _NEWLINE] if words else []
    while tokens and tokens[-1] in (_NEWLINE, _DEDENT):
        tokens.pop()
    return tokens


def display(tokens: Sequence[str]) -> str:
    """Normalised tokens as readable code: a line per statement, indented by block."""
    lines, line, level, line_level = [], [], 0, 0
    for tok in tokens:
        if tok == _NEWLINE:
            lines.append("    " * line_level + " ".join(line))
            line = []
        elif tok == _INDENT:
            level += 1
        elif tok == _DEDENT:
            level = max(0, level - 1)
        else:
            if not line:
                line_level = level
            line.append(tok)
    if line:
        lines.append("    " * line_level + " ".join(line))
    return "\n".join(lines)


def _h32(text: str) -> int:
    return zlib.crc32(text.encode())


def shingles(tokens: Sequence[str]) -> set[int]:
    """CRC-32 of every run of :data:`SHINGLE` tokens (the whole cell when shorter)."""
    if len(tokens) <= SHINGLE:
        return {_h32("\x1f".join(tokens))} if tokens else set()
    return {_h32("\x1f".join(tokens[i:i + SHINGLE])) for i in range(len(tokens) - SHINGLE + 1)}


def jaccard(a: set[int] | frozenset[int], b: set[int] | frozenset[int]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


# ----------------------------------------------------------------------------- fingerprints


def _capped_cells(nb: nbformat.NotebookNode) -> tuple[list[tuple[int, str]], list[str]]:
    """(index, source) of the gradable code cells, within the caps; notes on what was cut."""
    cells, notes, total = [], [], 0
    gradable = gradable_cells(nb)
    for cell in gradable[:MAX_CELLS]:
        source = cell.source
        if len(source) > MAX_CELL_CHARS:
            notes.append(f"cell {cell.index + 1} cut at {MAX_CELL_CHARS} characters")
            source = source[:MAX_CELL_CHARS]
        if total + len(source) > MAX_TOTAL_CHARS:
            notes.append(f"code from cell {cell.index + 1} on not read (over {MAX_TOTAL_CHARS} "
                         "characters)")
            break
        total += len(source)
        cells.append((cell.index, source))
    if len(gradable) > MAX_CELLS:
        notes.append(f"only the first {MAX_CELLS} code cells read")
    return cells, notes


@lru_cache(maxsize=8)
def _stub_sources(stub: Path, mtime_ns: int) -> tuple[str, ...]:
    """The stub's code cells (a trusted file, read once per version)."""
    nb, _ = parse_notebook(stub.read_bytes(), stub.name)
    return tuple(source for _, source in _capped_cells(nb)[0])


def _stub(stub: Path | None) -> tuple[tuple[str, ...], str]:
    if stub is None or not stub.is_file():
        return (), f"no stub notebook at {stub}: every code cell counts as an answer"
    try:
        return _stub_sources(stub, stub.stat().st_mtime_ns), ""
    except (OSError, SubmissionError) as exc:
        return (), f"stub notebook {stub} not read ({exc}): every code cell counts as an answer"


def _weights(files_dir: Path | None) -> list[dict]:
    """sha256 of the weights files submitted beside the notebook (not in hidden folders)."""
    if files_dir is None:
        return []
    found = sorted(
        p for p in files_dir.rglob("*")
        if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file() and not p.is_symlink()
        and not any(part.startswith(".") for part in p.relative_to(files_dir).parts)
    )
    weights = []
    for path in found[:MAX_WEIGHT_FILES]:
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
        weights.append({"name": path.relative_to(files_dir).as_posix(),
                        "sha256": digest.hexdigest(), "bytes": size})
    return weights


def empty_fingerprint(sub_id: str, reason: str) -> dict:
    """A fingerprint that compares with nothing, saying why."""
    return {"version": VERSION, "submission": sub_id, "reason": reason, "notes": [],
            "cells": [], "weights": []}


@lru_cache(maxsize=64)
def _stub_view(stub_sources: tuple[str, ...], bound: frozenset[str]
               ) -> tuple[frozenset[str], frozenset[int]]:
    """The stub's normalised cell hashes and all its shingles, under ``bound``."""
    tokens = [normalise(s, bound) for s in stub_sources]
    return (frozenset(_digest(t) for t in tokens),
            frozenset().union(*(shingles(t) for t in tokens)))


@lru_cache(maxsize=8)
def _stub_names(stub_sources: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """Names the stub binds, and every identifier its code mentions."""
    mentioned = {word for s in stub_sources for word in _identifiers(s)}
    return bound_names(stub_sources), frozenset(mentioned)


def _identifiers(source: str) -> set[str]:
    return {w for w in "".join(c if c.isidentifier() or c.isdigit() else " "
                               for c in source).split() if w.isidentifier()}


def _answer_cells(cells: Sequence[tuple[int, str]], stub_sources: tuple[str, ...]) -> list[dict]:
    stub_bound, stub_mentioned = _stub_names(stub_sources)
    unchanged = set(stub_sources)
    cells = [(index, source) for index, source in cells if source not in unchanged]
    bound = bound_names([s for _, s in cells]) | stub_bound
    stub_hashes, stub_shingles = _stub_view(stub_sources, bound & stub_mentioned)
    answers = []
    for index, source in cells:
        tokens = normalise(source, bound)
        digest = _digest(tokens)
        own = shingles(tokens) - stub_shingles
        if digest in stub_hashes or len(own) < MIN_SHINGLES:
            continue  # the stub's own cell, or too small to mean anything
        answers.append({"index": index, "hash": digest, "tokens": len(tokens),
                        "shingles": sorted(own), "source": source[:MAX_SNIPPET_CHARS],
                        "normalised": display(tokens)[:MAX_SNIPPET_CHARS]})
    return answers


def _digest(tokens: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(tokens).encode()).hexdigest()


def fingerprint(submission_path: Path, stub: Path | None) -> dict:
    """The fingerprint of one submission (.ipynb, folder or .zip), compared against ``stub``.

    Never raises for the submission's sake: an unreadable one gets an empty fingerprint with
    the reason.
    """
    sub_id = submission_id(submission_path)
    with tempfile.TemporaryDirectory(prefix="fingerprint-") as staging:
        try:
            submission = load_submission(submission_path, Path(staging))
        except (SubmissionError, OSError) as exc:
            return empty_fingerprint(sub_id, f"submission not read: {exc}")
        stub_sources, stub_note = _stub(stub)
        cells, notes = _capped_cells(submission.notebook)
        document = empty_fingerprint(sub_id, "")
        document["notes"] = [stub_note, *notes] if stub_note else notes
        document["cells"] = _answer_cells(cells, stub_sources)
        document["weights"] = _weights(submission.files_dir)
        return document


def write_fingerprint(out_dir: Path, submission_id: str, submission_path: Path,
                      stub_path: Path | None) -> Path:
    """Write ``OUT/submissions/<id>/fingerprint.json``; any failure becomes an empty one with
    the reason."""
    try:
        document = fingerprint(submission_path, stub_path)
    except Exception as exc:  # a side feature: it must never cost a batch its results
        document = empty_fingerprint(submission_id, f"fingerprint failed: "
                                                    f"{type(exc).__name__}: {exc}"[:1000])
    document["submission"] = submission_id
    path = submission_file(out_dir, submission_id, FINGERPRINT)
    atomic_write(path, json.dumps(document, ensure_ascii=False) + "\n")
    return path


# ----------------------------------------------------------------------------- pairs


def _valid(document: object) -> bool:
    return (isinstance(document, dict) and document.get("version") == VERSION
            and isinstance(document.get("cells"), list)
            and isinstance(document.get("weights"), list))


def load_fingerprints(out_dir: Path) -> dict[str, dict]:
    """Every readable fingerprint in ``out_dir`` by submission id (its folder's name)."""
    found = {}
    for folder in submission_dirs(out_dir):
        path = folder / FINGERPRINT
        if not path.is_file() or path.stat().st_size > MAX_FINGERPRINT_BYTES:
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # half-written by a killed run: the next batch writes it again
        if _valid(document):
            found[path.parent.name] = document
    return found


def _weight_matches(prints: dict[str, dict]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for sub_id, document in prints.items():
        for entry in document["weights"]:
            if isinstance(entry, dict) and entry.get("bytes", 0) >= MIN_WEIGHT_BYTES:
                by_hash[entry["sha256"]].append((sub_id, entry["name"]))
    matches: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for owners in by_hash.values():
        for i, (sub_a, name_a) in enumerate(owners):
            for sub_b, name_b in owners[i + 1:]:
                if sub_a != sub_b:
                    key, names = ((sub_a, sub_b), (name_a, name_b)) if sub_a < sub_b else \
                        ((sub_b, sub_a), (name_b, name_a))
                    matches[key].append(names)
    return matches


def _candidates(sets: Sequence[frozenset[int]]) -> Iterable[tuple[int, int]]:
    """Index pairs that may reach :data:`NEAR` (prefix filtering: exact, not sampled).

    Two sets with Jaccard >= t share at least ceil(t * |x|) elements; ordered by global
    rarity, the first |x| - ceil(t * |x|) + 1 elements of each must then share one.
    """
    frequency = Counter(x for s in sets for x in s)
    index: dict[int, list[int]] = defaultdict(list)
    for i, items in enumerate(sets):
        ordered = sorted(items, key=lambda x: (frequency[x], x))
        prefix = len(ordered) - math.ceil(NEAR * len(ordered) - 1e-9) + 1
        seen: set[int] = set()
        for x in ordered[:prefix]:
            seen.update(index[x])
            index[x].append(i)
        yield from ((j, i) for j in sorted(seen))


def _cell_matches(prints: dict[str, dict]) -> dict[tuple[str, str], list[CellMatch]]:
    cells = [(sub_id, cell) for sub_id, document in prints.items()
             for cell in document["cells"] if isinstance(cell, dict)]
    sets = [frozenset(cell.get("shingles", ())) for _, cell in cells]
    matches: dict[tuple[str, str], list[CellMatch]] = defaultdict(list)
    for i, j in _candidates(sets):
        (sub_a, a), (sub_b, b) = cells[i], cells[j]
        if sub_a == sub_b:
            continue
        similarity = jaccard(sets[i], sets[j])
        if similarity < NEAR:
            continue
        if sub_b < sub_a:
            (sub_a, a), (sub_b, b) = (sub_b, b), (sub_a, a)
        matches[(sub_a, sub_b)].append(CellMatch(
            a["index"], b["index"], round(similarity, 3), a.get("source", ""),
            b.get("source", ""), a.get("normalised", ""), b.get("normalised", "")))
    return matches


def similar_pairs(out_dir: Path, only: Collection[str] | None = None) -> list[Pair]:
    """Every two submissions in ``out_dir`` with near-identical answer cells or identical
    weights files, strongest first (among the ids in ``only``, when given)."""
    prints = load_fingerprints(out_dir)
    if only is not None:
        prints = {sub_id: doc for sub_id, doc in prints.items() if sub_id in only}
    cells, weights = _cell_matches(prints), _weight_matches(prints)
    pairs = [
        Pair(a, b, tuple(sorted(cells.get((a, b), ()), key=lambda m: (m.cell_a, m.cell_b))),
             tuple(weights.get((a, b), ())))
        for a, b in sorted(set(cells) | set(weights))
    ]
    return sorted(pairs, key=lambda p: p.strength, reverse=True)
