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
import io
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..core import templates
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
        evaluation = result.details.evaluation
        for question, measured in evaluation.models.items() if evaluation is not None else ():
            entry = found.setdefault(question, {"official": [], "secret": []})
            for key, value in (("official", measured.accuracy),
                               ("secret", measured.secret_accuracy)):
                if value is not None:
                    entry[key].append(100 * float(value))
    return found


def graded_on(results: Sequence[SubmissionResult]) -> list[str]:
    """Which image sets the models were graded on (name, kind, images, digest), one line per
    distinct set and role, as the results recorded them."""
    lines: list[str] = []
    for result in results:
        evaluation = result.details.evaluation
        if evaluation is None:
            continue
        for found, label in ((evaluation.official, "test set"),
                             (evaluation.secret, "secret set"),
                             (evaluation.train, "training images (memorisation check)")):
            if found is None:
                continue
            line = (f"{label}: {found.name} ({found.kind or 'unknown kind'}, "
                    f"{found.images} images, sha256 {found.digest or '?'}...)")
            if line not in lines:
                lines.append(line)
    return lines


def _seconds(result: SubmissionResult) -> float | None:
    seconds = result.details.seconds
    return None if seconds is None else float(seconds)


# ----------------------------------------------------------------------------- page data
# Each section's data for templates/report.html, which does all the markup and escaping.


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value == value else "-"


def _link(out_dir: Path, sub_id: str) -> dict:
    """A submission's id, with the href of its feedback page when one is on disk."""
    for name in FEEDBACK_FILES:
        if submission_file(out_dir, sub_id, name).is_file():
            return {"text": sub_id, "href": f"{SUBMISSIONS_DIR}/{quote(sub_id)}/{name}"}
    return {"text": sub_id, "href": None}


def _plot(draw: Callable, title: str, height: float = 3.2, counts_on_y: bool = True) -> dict:
    """A matplotlib figure drawn by ``draw(ax)``, as base64 PNG data for an ``<img>``; an
    axis that counts submissions gets integer ticks."""
    from matplotlib.figure import Figure  # no pyplot: no backend, no global state
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.0, height), dpi=100)
    axes = figure.subplots()
    draw(axes)
    if counts_on_y:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, parse_math=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return {"title": title, "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def _summary(data: ClassResults, pairs: Sequence[similarity.Pair]) -> list[tuple[str, str]]:
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
    return rows


def _scores_plot(data: ClassResults) -> dict | None:
    if not data.results:
        return None
    scores = [r.score for r in data.results]
    top = max(r.max_score for r in data.results) or 1.0
    whole = top == int(top) and top <= 40  # a bar per point; else 20 bins
    bins = [i - 0.5 for i in range(int(top) + 2)] if whole else 20

    def draw(ax) -> None:
        ax.hist(scores, bins=bins, range=None if whole else (0, top), color="#3b6fb6",
                edgecolor="white")
        if whole:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("score")
        ax.set_ylabel("submissions")

    return _plot(draw, f"Scores of {len(scores)} submission(s), out of {_num(top)}")


def _questions(data: ClassResults) -> dict | None:
    graded = data.graded
    if not graded:
        return None
    names = list(dict.fromkeys(q.name for r in graded for q in r.questions))
    rows, rates = [], []
    for name in names:
        answers = [q for r in graded for q in r.questions if q.name == name]
        full = sum(1 for q in answers if q.passed_all)
        rates.append(100 * full / len(answers))
        mean = statistics.fmean(q.score for q in answers)
        rows.append((name, f"{full} / {len(answers)}", f"{rates[-1]:.0f}%",
                     f"{_num(mean)} / {_num(answers[0].max_score)}"))

    def draw(ax) -> None:
        positions = range(len(names))
        ax.barh(positions, rates, color="#2e8b57")
        ax.set_yticks(list(positions), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of graded submissions with full marks")

    plot = _plot(draw, "Pass rate per question", height=max(2.5, 0.35 * len(names) + 1),
                 counts_on_y=False)
    return {"plot": plot, "rows": rows}


def _cases(data: ClassResults) -> dict | None:
    stats = case_stats(data.results)
    if not stats:
        return None
    hidden = [s for s in stats if s.hidden and s.failed]
    return {"stats": stats, "top": hidden[0] if hidden else None}


def _accuracy(data: ClassResults) -> dict | None:
    found = accuracies(data.results)
    if not found:
        return None
    models = []
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
        models.append({"question": question,
                       "plot": _plot(draw, f"{question}: accuracy of {len(official)} model(s)"),
                       "median": f"{statistics.median(official):.1f}",
                       "min": f"{min(official):.1f}", "max": f"{max(official):.1f}"})
    return {"graded_on": graded_on(data.results), "models": models}


def _slowest(data: ClassResults) -> list[dict]:
    timed = sorted(((s, r) for r in data.results if (s := _seconds(r)) is not None),
                   key=lambda item: -item[0])
    return [{"link": _link(data.out_dir, r.submission_id), "seconds": f"{s:.1f} s",
             "score": f"{_num(r.score)} / {_num(r.max_score)}"} for s, r in timed[:SLOWEST]]


def _failed(data: ClassResults) -> dict:
    failed = [r for r in data.results if r.status is not SubmissionStatus.GRADED]
    return {"total": len(failed),
            "rows": [{"link": _link(data.out_dir, r.submission_id), "message": r.message}
                     for r in failed[:MAX_LISTED]]}


def _flagged(data: ClassResults) -> dict:
    flagged = [r for r in data.results if r.review_flags]
    return {"total": len(flagged),
            "rows": [{"link": _link(data.out_dir, r.submission_id),
                      "flags": [f.describe() for f in r.review_flags]}
                     for r in flagged[:MAX_LISTED]]}


def _pair(out_dir: Path, pair: similarity.Pair) -> dict:
    return {"a": _link(out_dir, pair.a), "b": _link(out_dir, pair.b), "id_a": pair.a,
            "id_b": pair.b, "weights": pair.weights, "cells": pair.cells,
            "listed": ", ".join(f"{m.cell_a + 1}~{m.cell_b + 1}" for m in pair.cells),
            "shown": pair.cells[:MAX_MATCHES_PER_PAIR]}


def _everyone(data: ClassResults) -> list[dict]:
    rows = []
    for r in data.results:
        seconds = _seconds(r)
        rows.append({"link": _link(data.out_dir, r.submission_id),
                     "score": f"{_num(r.score)} / {_num(r.max_score)}", "status": r.status.value,
                     "review": "needs review" if r.review_flags else "",
                     "seconds": f"{seconds:.1f} s" if seconds is not None else ""})
    return rows


def render(data: ClassResults, pairs: Sequence[similarity.Pair]) -> str:
    """The whole report page (templates/report.html)."""
    return templates.render(
        "report.html",
        title=f"Class report: {data.assignment or data.out_dir.name}",
        written=time.strftime("%Y-%m-%d %H:%M"), out_dir=str(data.out_dir),
        seed=f", seed {data.seed}" if data.seed is not None else "",
        gradebook=GRADEBOOK if (data.out_dir / GRADEBOOK).is_file() else None,
        gradebook_name=GRADEBOOK, summary=_summary(data, pairs),
        scores_plot=_scores_plot(data), questions=_questions(data), cases=_cases(data),
        accuracy=_accuracy(data), slowest=_slowest(data), failed=_failed(data),
        flagged=_flagged(data), near=similarity.NEAR,
        similar={"total": len(pairs),
                 "pairs": [_pair(data.out_dir, p) for p in pairs[:MAX_PAIRS]]},
        everyone=_everyone(data), unfinished=[_link(data.out_dir, n) for n in data.unfinished])


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
