"""``OUT/report.html``: the class at a glance, for the instructor, from what is on disk in OUT.

Reads every ``OUT/submissions/<id>/record.json`` (the finished results, :mod:`.records`), the
batch's assignment and seed (``OUT/.grader/batch.json``) and the similarity fingerprints
(:mod:`.similarity`), and writes one self-contained page: a summary, a score histogram,
per-question pass rates, per-test failure counts (hidden cases first), accuracy
distributions of the saved models, the slowest submissions, every submission that failed to
run or was flagged, similar pairs side by side, and every submission linked to its feedback.
Plots are matplotlib PNGs embedded as base64; everything from a submission is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..core.atomic import atomic_write
from ..core.errors import Outcome, UsageError
from ..core.results import SubmissionResult, SubmissionStatus
from . import similarity
from .layout import (
    FEEDBACK_HTML,
    FEEDBACK_MD,
    GRADEBOOK,
    RECORD,
    REPORT,
    RESULTS,
    SUBMISSIONS_DIR,
    adopt_old_layout,
    submission_dirs,
    submission_file,
)
from .records import batch_state, finished_result

MAX_LISTED = 200  # rows of a long list (failed, flagged, slowest excluded) before "and N more"
MAX_PAIRS = 100  # similar pairs shown side by side
MAX_MATCHES_PER_PAIR = 3  # cells side by side per pair (all are listed by number)
SLOWEST = 10
FEEDBACK_FILES = (FEEDBACK_HTML, FEEDBACK_MD)


class ReportError(UsageError, RuntimeError):
    """The report cannot be written (the message says what to do)."""


@dataclass(frozen=True)
class ClassResults:
    """What a batch left in its output folder."""

    out_dir: Path
    assignment: str
    seed: int | None
    results: tuple[SubmissionResult, ...]
    unfinished: tuple[str, ...]  # folders with results but no readable record.json

    @property
    def graded(self) -> list[SubmissionResult]:
        """Submissions whose grading ran to the end."""
        return [r for r in self.results if r.status is SubmissionStatus.GRADED]


@dataclass(frozen=True)
class CaseStats:
    """How often one test case failed among the graded submissions."""

    question: str
    name: str
    hidden: bool
    failed: int
    ran: int


# ----------------------------------------------------------------------------- loading


def load_results(out_dir: Path) -> ClassResults:
    """The finished results in ``out_dir``; raises ReportError if it is not a folder."""
    if not out_dir.is_dir():
        raise ReportError(f"no output folder at {out_dir}: pass the --out folder of a batch "
                          "(`python grader.py report OUT`)")
    assignment, seed = batch_state(out_dir)
    results, unfinished = [], []
    for folder in submission_dirs(out_dir):
        result = finished_result(out_dir, folder.name, None)
        if result is not None:
            results.append(result)
        elif (folder / RECORD).exists() or (folder / RESULTS).exists():
            unfinished.append(folder.name)
    return ClassResults(out_dir, assignment, seed, tuple(results), tuple(unfinished))


def case_stats(results: Sequence[SubmissionResult]) -> list[CaseStats]:
    """Failures per test case over graded submissions: hidden cases first, most failed first."""
    ran: Counter = Counter()
    failed: Counter = Counter()
    for result in results:
        if result.status is not SubmissionStatus.GRADED:
            continue
        for question in result.questions:
            for case in question.cases:
                key = (question.name, case.name, case.hidden)
                ran[key] += 1
                failed[key] += case.outcome is not Outcome.PASSED
    stats = [CaseStats(q, n, h, failed[(q, n, h)], count) for (q, n, h), count in ran.items()]
    return sorted(stats, key=lambda s: (not s.hidden, -s.failed, s.question, s.name))


def accuracies(results: Sequence[SubmissionResult]) -> dict[str, dict[str, list[float]]]:
    """Per model question, the measured accuracies ("official", "secret") in percent."""
    found: dict[str, dict[str, list[float]]] = {}
    for result in results:
        evaluation = result.details.get("evaluation")
        models = evaluation.get("models") if isinstance(evaluation, dict) else None
        for question, measured in models.items() if isinstance(models, dict) else ():
            entry = found.setdefault(question, {"official": [], "secret": []})
            for key, field in (("official", "accuracy"), ("secret", "secret_accuracy")):
                value = measured.get(field) if isinstance(measured, dict) else None
                if isinstance(value, int | float):
                    entry[key].append(100 * float(value))
    return found


def graded_on(results: Sequence[SubmissionResult]) -> list[str]:
    """Which image sets the models were graded on (name, kind, images, digest), one line per
    distinct set and role, as the results recorded them."""
    lines: list[str] = []
    for result in results:
        evaluation = result.details.get("evaluation")
        if not isinstance(evaluation, dict):
            continue
        for role, label in (("official", "test set"), ("secret", "secret set"),
                            ("train", "training images (memorisation check)")):
            found = evaluation.get(role)
            if not isinstance(found, dict):
                continue
            line = (f"{label}: {found.get('name')} ({found.get('kind') or 'unknown kind'}, "
                    f"{found.get('images')} images, sha256 {found.get('digest') or '?'}...)")
            if line not in lines:
                lines.append(line)
    return lines


def _seconds(result: SubmissionResult) -> float | None:
    value = result.details.get("seconds")
    return float(value) if isinstance(value, int | float) else None


# ----------------------------------------------------------------------------- html pieces


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value == value else "-"


def _feedback_link(out_dir: Path, sub_id: str, text: str | None = None) -> str:
    """``<a href="submissions/ID/feedback.html">ID</a>``, or the id alone when no feedback is
    on disk."""
    for name in FEEDBACK_FILES:
        if submission_file(out_dir, sub_id, name).is_file():
            href = f"{SUBMISSIONS_DIR}/{quote(sub_id)}/{name}"
            return f'<a href="{_h(href)}">{_h(text or sub_id)}</a>'
    return _h(text or sub_id)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> list[str]:
    """A table (no header row when ``header`` is empty); header cells are escaped here, row
    cells must already be HTML."""
    lines = [f'<table class="{_h(css)}">']
    if header:
        lines.append("<tr>" + "".join(f"<th>{_h(h)}</th>" for h in header) + "</tr>")
    lines += ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    return [*lines, "</table>"]


def _more(total: int, shown: int, what: str) -> list[str]:
    return [f"<p>... and {total - shown} more {_h(what)}.</p>"] if total > shown else []


def _plot(draw: Callable, title: str, height: float = 3.2) -> str:
    """A matplotlib figure drawn by ``draw(ax)`` as an embedded PNG ``<img>``."""
    from matplotlib.figure import Figure  # no pyplot: no backend, no global state

    figure = Figure(figsize=(7.0, height), dpi=100)
    axes = figure.subplots()
    draw(axes)
    axes.set_title(title, parse_math=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{_h(title)}" src="data:image/png;base64,{data}">'


# ----------------------------------------------------------------------------- sections


def _summary(data: ClassResults, pairs: Sequence[similarity.Pair]) -> list[str]:
    results = data.results
    scores = [r.score for r in results]
    top = max((r.max_score for r in results), default=0.0)
    rows = [
        ("submissions", str(len(results))),
        ("graded", str(len(data.graded))),
        ("failed to run", str(len(results) - len(data.graded))),
        ("flagged for review", str(sum(1 for r in results if r.review_flags))),
        ("similar pairs (for a look, not a penalty)", str(len(pairs))),
        ("mean score", f"{_num(statistics.fmean(scores))} / {_num(top)}" if scores else "-"),
        ("median score", f"{_num(statistics.median(scores))} / {_num(top)}" if scores else "-"),
    ]
    if data.unfinished:
        rows.append(("results without a finished record (rerun the batch)",
                     str(len(data.unfinished))))
    return ['<section id="summary"><h2>Summary</h2>',
            *_table((), [(_h(k), _h(v)) for k, v in rows], "summary"), "</section>"]


def _score_section(data: ClassResults) -> list[str]:
    lines = ['<section id="scores"><h2>Scores</h2>']
    if not data.results:
        return [*lines, "<p>No finished submissions yet.</p>", "</section>"]
    scores = [r.score for r in data.results]
    top = max(r.max_score for r in data.results) or 1.0

    whole = top == int(top) and top <= 40  # a bar per point; else 20 bins
    bins = [i - 0.5 for i in range(int(top) + 2)] if whole else 20

    def draw(ax) -> None:
        ax.hist(scores, bins=bins, range=None if whole else (0, top), color="#3b6fb6",
                edgecolor="white")
        ax.set_xlabel("score")
        ax.set_ylabel("submissions")

    lines.append(_plot(draw, f"Scores of {len(scores)} submission(s), out of {_num(top)}"))
    return [*lines, "</section>"]


def _question_section(data: ClassResults) -> list[str]:
    lines = ['<section id="questions"><h2>Questions</h2>']
    graded = data.graded
    if not graded:
        return [*lines, "<p>No graded submissions: nothing to show per question.</p>",
                "</section>"]
    names = list(dict.fromkeys(q.name for r in graded for q in r.questions))
    rows, rates = [], []
    for name in names:
        answers = [q for r in graded for q in r.questions if q.name == name]
        full = sum(1 for q in answers if q.passed_all)
        rates.append(100 * full / len(answers))
        mean = statistics.fmean(q.score for q in answers)
        rows.append((_h(name), _h(f"{full} / {len(answers)}"), _h(f"{rates[-1]:.0f}%"),
                     _h(f"{_num(mean)} / {_num(answers[0].max_score)}")))

    def draw(ax) -> None:
        positions = range(len(names))
        ax.barh(positions, rates, color="#2e8b57")
        ax.set_yticks(list(positions), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of graded submissions with full marks")

    lines.append(_plot(draw, "Pass rate per question", height=max(2.5, 0.35 * len(names) + 1)))
    lines += _table(("question", "full marks", "pass rate", "mean score"), rows, "questions")
    return [*lines, "</section>"]


def _case_section(data: ClassResults) -> list[str]:
    stats = case_stats(data.results)
    lines = ['<section id="cases"><h2>Test cases: failures</h2>']
    if not stats:
        return [*lines, "<p>No graded submissions.</p>", "</section>"]
    hidden = [s for s in stats if s.hidden and s.failed]
    if hidden:
        top = hidden[0]
        lines.append(f"<p>The hidden case that catches most students: <code>{_h(top.question)}: "
                     f"{_h(top.name)}</code> ({top.failed} of {top.ran}).</p>")
    rows = [(_h(s.question), f"<code>{_h(s.name)}</code>", "hidden" if s.hidden else "public",
             _h(f"{s.failed} / {s.ran}")) for s in stats]
    lines += _table(("question", "case", "visibility", "failed"), rows, "cases")
    return [*lines, "</section>"]


def _accuracy_section(data: ClassResults) -> list[str]:
    found = accuracies(data.results)
    if not found:
        return []
    lines = ['<section id="accuracy"><h2>Saved models: accuracy</h2>',
             *(f"<p>{_h(line)}</p>" for line in graded_on(data.results))]
    for question, values in found.items():
        if not values["official"]:
            continue

        def draw(ax, values=values) -> None:
            ax.hist(values["official"], bins=20, range=(0, 100), color="#3b6fb6",
                    edgecolor="white", label="test set")
            if values["secret"]:
                ax.hist(values["secret"], bins=20, range=(0, 100), color="#d08000", alpha=0.6,
                        edgecolor="white", label="secret set")
                ax.legend()
            ax.set_xlabel("accuracy, %")
            ax.set_ylabel("submissions")

        official = values["official"]
        lines.append(_plot(draw, f"{question}: accuracy of {len(official)} model(s)"))
        lines.append(f"<p>{_h(question)}: median {statistics.median(official):.1f}%, "
                     f"min {min(official):.1f}%, max {max(official):.1f}%.</p>")
    return [*lines, "</section>"]


def _slowest_section(data: ClassResults) -> list[str]:
    timed = sorted(((s, r) for r in data.results if (s := _seconds(r)) is not None),
                   key=lambda item: -item[0])
    lines = ['<section id="slowest"><h2>Slowest submissions</h2>']
    if not timed:
        return [*lines, "<p>No grading times recorded.</p>", "</section>"]
    rows = [(_feedback_link(data.out_dir, r.submission_id), _h(f"{s:.1f} s"),
             _h(f"{_num(r.score)} / {_num(r.max_score)}")) for s, r in timed[:SLOWEST]]
    lines += _table(("submission", "grading time", "score"), rows, "slowest")
    return [*lines, "</section>"]


def _failed_section(data: ClassResults) -> list[str]:
    failed = [r for r in data.results if r.status is not SubmissionStatus.GRADED]
    lines = ['<section id="failed"><h2>Failed to run</h2>']
    if not failed:
        return [*lines, "<p>None.</p>", "</section>"]
    rows = [(_feedback_link(data.out_dir, r.submission_id), f"<pre>{_h(r.message)}</pre>")
            for r in failed[:MAX_LISTED]]
    lines += _table(("submission", "why"), rows, "failed")
    return [*lines, *_more(len(failed), MAX_LISTED, "submissions"), "</section>"]


def _flagged_section(data: ClassResults) -> list[str]:
    flagged = [r for r in data.results if r.review_flags]
    lines = ['<section id="flagged"><h2>Flagged for review</h2>',
             "<p>Scores stand until a person decides.</p>"]
    if not flagged:
        return [*lines, "<p>None.</p>", "</section>"]
    rows = [(_feedback_link(data.out_dir, r.submission_id),
             "<ul>" + "".join(f"<li>{_h(f.describe())}</li>" for f in r.review_flags) + "</ul>")
            for r in flagged[:MAX_LISTED]]
    lines += _table(("submission", "flags"), rows, "flagged")
    return [*lines, *_more(len(flagged), MAX_LISTED, "submissions"), "</section>"]


def _side_by_side(left_title: str, left: str, right_title: str, right: str) -> str:
    return (f'<div class="side"><div><h4>{left_title}</h4><pre>{_h(left)}</pre></div>'
            f"<div><h4>{right_title}</h4><pre>{_h(right)}</pre></div></div>")


def _pair_html(out_dir: Path, pair: similarity.Pair) -> list[str]:
    a, b = _feedback_link(out_dir, pair.a), _feedback_link(out_dir, pair.b)
    lines = [f'<div class="pair"><h3>{a} and {b}</h3>']
    if pair.weights:
        files = ", ".join(f"{_h(x)} = {_h(y)}" for x, y in pair.weights)
        lines.append(f"<p>Identical weights files: {files}</p>")
    if pair.cells:
        listed = ", ".join(f"{m.cell_a + 1}~{m.cell_b + 1}" for m in pair.cells)
        lines.append(f"<p>{len(pair.cells)} near-identical answer cell(s) (cell in "
                     f"{_h(pair.a)} ~ cell in {_h(pair.b)}): {_h(listed)}</p>")
    for match in pair.cells[:MAX_MATCHES_PER_PAIR]:
        lines.append(f"<p>Near-identical cells (similarity {match.similarity:.2f}):</p>")
        lines.append(_side_by_side(f"{_h(pair.a)}, cell {match.cell_a + 1}", match.source_a,
                                   f"{_h(pair.b)}, cell {match.cell_b + 1}", match.source_b))
        lines.append("<details><summary>normalised</summary>"
                     + _side_by_side(_h(pair.a), match.normalised_a, _h(pair.b),
                                     match.normalised_b) + "</details>")
    lines += _more(len(pair.cells), MAX_MATCHES_PER_PAIR, "matching cells")
    return [*lines, "</div>"]


def _similar_section(data: ClassResults, pairs: Sequence[similarity.Pair]) -> list[str]:
    lines = ['<section id="similar"><h2>Similar submissions</h2>',
             "<p>For a person to look at, not a penalty: answer cells that are near-identical "
             f"after normalising names, literals and spacing (similarity at least "
             f"{similarity.NEAR}), and identical weights files.</p>"]
    if not pairs:
        return [*lines, "<p>None found.</p>", "</section>"]
    for pair in pairs[:MAX_PAIRS]:
        lines += _pair_html(data.out_dir, pair)
    return [*lines, *_more(len(pairs), MAX_PAIRS, "pairs"), "</section>"]


def _all_section(data: ClassResults) -> list[str]:
    lines = ['<section id="all"><h2>All submissions</h2>']
    rows = []
    for r in data.results:
        seconds = _seconds(r)
        rows.append((_feedback_link(data.out_dir, r.submission_id),
                     _h(f"{_num(r.score)} / {_num(r.max_score)}"), _h(r.status.value),
                     "needs review" if r.review_flags else "",
                     _h(f"{seconds:.1f} s") if seconds is not None else ""))
    lines += _table(("submission", "score", "status", "review", "time"), rows, "all")
    if data.unfinished:
        names = ", ".join(_feedback_link(data.out_dir, n) for n in data.unfinished)
        lines.append(f"<p>Not finished (no readable record.json; run the batch again): "
                     f"{names}</p>")
    return [*lines, "</section>"]


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 75rem; margin: 2rem auto; padding: 0 1rem;
       color: #1b1b1b; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #ccc; padding: .25rem .6rem; vertical-align: top; text-align: left; }
pre { background: #f5f5f5; padding: .5rem; overflow-x: auto; white-space: pre-wrap;
      margin: 0; max-height: 30rem; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.pair { border-top: 1px solid #ddd; margin-top: 1rem; }
img.plot { display: block; max-width: 100%; margin: .5rem 0; }
"""


def render(data: ClassResults, pairs: Sequence[similarity.Pair]) -> str:
    """The whole report page."""
    title = f"Class report: {data.assignment or data.out_dir.name}"
    seed = f", seed {data.seed}" if data.seed is not None else ""
    gradebook = (f'<a href="{GRADEBOOK}">{GRADEBOOK}</a>'
                 if (data.out_dir / GRADEBOOK).is_file() else f"no {GRADEBOOK}")
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_h(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{_h(title)}</h1>",
             f"<p>Written {_h(time.strftime('%Y-%m-%d %H:%M'))} from {_h(data.out_dir)}{_h(seed)}; "
             f"{gradebook}.</p>"]
    for section in (_summary(data, pairs), _score_section(data), _question_section(data),
                    _case_section(data), _accuracy_section(data), _slowest_section(data),
                    _failed_section(data), _flagged_section(data), _similar_section(data, pairs),
                    _all_section(data)):
        lines += section
    return "\n".join([*lines, "</body>", "</html>"]) + "\n"


def write_report(out_dir: Path) -> Path:
    """Write ``OUT/report.html`` from what is on disk in ``out_dir`` (an output folder of an
    older grader is first moved into today's layout); returns its path."""
    if out_dir.is_dir():
        adopt_old_layout(out_dir)
    data = load_results(out_dir)
    pairs = similarity.similar_pairs(out_dir, {r.submission_id for r in data.results})
    path = out_dir / REPORT
    atomic_write(path, render(data, pairs))
    return path
