"""``grader.py points OUT``: one graded submission's points in the forms GitHub reads.

Reads what ``grade`` wrote (``gradebook.csv`` for the scores, ``submissions/<id>/results.json``
for each question's points possible, ``submissions/<id>/feedback.md``) and prints a per-question
table and ``Points X/Y`` on stdout. In GitHub Actions it also appends a Markdown table and the
feedback to ``$GITHUB_STEP_SUMMARY`` and writes ``result=<base64 JSON>`` to ``$GITHUB_OUTPUT``
in the format of GitHub Classroom's runners (``classroom-resources/autograding-io-grader``:
``{version, status, max_score, tests: [{name, status, score, message, ...}]}``), which
``classroom-resources/autograding-grading-reporter`` decodes from ``<STEP-ID>_RESULTS`` and
reports to Classroom as ``Points X/Y``. Sources and details: ``ci/github/student.yml``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.catalogue import _
from ..core.errors import UsageError
from ..core.text import visible
from ..outputs.layout import FEEDBACK_MD, GRADEBOOK, RESULTS, submission_file


class PointsError(UsageError, ValueError):
    """The output folder cannot be read as one graded submission; the message says why."""


@dataclass(frozen=True)
class QuestionPoints:
    """One question's score and points possible."""

    name: str
    score: float
    max_score: float


@dataclass(frozen=True)
class Points:
    """One submission's points, as the gradebook has them."""

    submission: str
    questions: tuple[QuestionPoints, ...]
    score: float
    max_score: float
    status: str  # "graded" or "error"
    message: str
    feedback: str


def js_number(value: float) -> str:
    """A number as JavaScript prints it (``5`` not ``5.0``), as the reporter's notice does."""
    value = float(value)
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def rounded(value: float) -> float:
    """Points as Classroom gets them: two decimals."""
    return round(float(value), 2) + 0.0  # + 0.0: never -0.0


def points_line(points: Points) -> str:
    """``Points X/Y``, the line GitHub Classroom reads (both rounded to two decimals)."""
    return f"Points {_pair(points.score, points.max_score, '/')}"


def _question_max(results: Mapping) -> dict[str, float]:
    """Points possible per question: its test cases' max_score in results.json."""
    totals: dict[str, float] = {}
    for test in results.get("tests", []):
        question = (test.get("extra_data") or {}).get("question")
        if question is not None:
            totals[question] = totals.get(question, 0.0) + float(test.get("max_score", 0))
    return totals


def read_points(out_dir: Path, submission: str | None = None) -> Points:
    """The points of ``submission`` (default: the only one) in ``out_dir``."""
    gradebook = out_dir / GRADEBOOK
    try:
        with gradebook.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except OSError as exc:
        raise PointsError(f"cannot read {gradebook} ({exc.strerror}); run grade with --out "
                          f"{out_dir} first") from None
    if submission is None and len(rows) != 1:
        ids = ", ".join(row["submission"] for row in rows) or "none"
        raise PointsError(f"{gradebook} has {len(rows)} submissions ({ids}); choose one with "
                          "--submission ID")
    row = next((r for r in rows if submission in (None, r["submission"])), None)
    if row is None:
        raise PointsError(f"no submission {submission!r} in {gradebook}")
    sub_id = row["submission"]
    try:
        results_path = submission_file(out_dir, sub_id, RESULTS)
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, or an id that is no folder
        raise PointsError(f"cannot read the results of {sub_id!r} in {out_dir}: {exc}") from None
    possible = _question_max(results)
    names = columns[3:-2]  # submission, score, max_score, <questions>, status, message
    questions = tuple(
        QuestionPoints(name, float(row[name]), possible.get(name, 0.0))
        for name in names if row.get(name, "") != ""  # empty: not graded in this run
    )
    feedback_path = submission_file(out_dir, sub_id, FEEDBACK_MD)
    feedback = feedback_path.read_text(encoding="utf-8") if feedback_path.is_file() else ""
    return Points(sub_id, questions, float(row["score"]), float(row["max_score"]),
                  row.get("status", ""), row.get("message", ""), feedback)


def _pair(score: float, max_score: float, sep: str) -> str:
    return f"{js_number(rounded(score))}{sep}{js_number(rounded(max_score))}"


def table_text(points: Points) -> str:
    """A plain table for the log."""
    width = max([len(q.name) for q in points.questions] + [8])
    lines = [f"{'question':<{width}}  score / max"]
    lines += [f"{q.name:<{width}}  {_pair(q.score, q.max_score, ' / ')}"
              for q in points.questions]
    return "\n".join(lines) + "\n"


def summary_markdown(points: Points) -> str:
    """The job summary: a table per question (for the student, in the run's language), then the
    feedback."""
    lines = ["## " + _("Autograding: public tests"), "",
             _("| question | points | out of |"), "| --- | ---: | ---: |"]
    for q in points.questions:
        mark = "✅" if q.score >= q.max_score else "❌"
        lines.append(f"| {mark} `{q.name}` | {js_number(rounded(q.score))} | "
                     f"{js_number(rounded(q.max_score))} |")
    lines += [_("| **total** | **{score}** | **{max_score}** |").format(
                  score=js_number(rounded(points.score)),
                  max_score=js_number(rounded(points.max_score))),
              "", points_line(points), ""]
    if points.feedback:
        lines += [f"<details><summary>{_('Grader feedback (feedback.md)')}</summary>", "",
                  points.feedback.replace("</details>", "&lt;/details&gt;"), "</details>", ""]
    return "\n".join(lines)


def reporter_result(points: Points) -> dict:
    """The runner result that classroom-resources/autograding-grading-reporter reads.

    One test entry carries the total, so that the reporter's sum (``Points X/Y``) is exactly
    our rounded total; the per-question breakdown is in its message.
    """
    full = points.status == "graded" and points.score >= points.max_score
    status = "error" if points.status != "graded" else "pass" if full else "fail"
    breakdown = "; ".join(f"{q.name}: {_pair(q.score, q.max_score, '/')}"
                          for q in points.questions)
    message = breakdown if points.status == "graded" else f"{points.message} {breakdown}".strip()
    return {
        "version": 1,
        "status": status,
        "max_score": rounded(points.max_score),
        "tests": [{
            "name": "public tests",
            "status": "pass" if full else "fail",
            "score": rounded(points.score),
            "message": message,
            "test_code": "",
            "filename": "",
            "line_no": 0,
            "duration": 0,
        }],
    }


def encoded_result(points: Points) -> str:
    """``reporter_result`` as base64 of compact JSON, as the Classroom runners output it."""
    text = json.dumps(reporter_result(points), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def report(out_dir: Path, submission: str | None, env: Mapping[str, str]) -> Points:
    """Print the table and ``Points X/Y``; write the GitHub summary and output where set."""
    points = read_points(out_dir, submission)
    if points.status != "graded":
        print(f"grading failed: {visible(points.message)}")
    print(table_text(points), end="")
    if env.get("GITHUB_STEP_SUMMARY"):
        _append(env["GITHUB_STEP_SUMMARY"], summary_markdown(points))
    if env.get("GITHUB_OUTPUT"):
        _append(env["GITHUB_OUTPUT"], f"result={encoded_result(points)}\n")
    print(points_line(points))
    return points


def cmd_points(args: argparse.Namespace) -> int:
    """Print one graded submission's points (and write GitHub's summary and output)."""
    report(args.out, args.submission, os.environ)  # a PointsError: cli.main's one mapping
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``points`` command to grader.py's parser."""
    parser = commands.add_parser(
        "points", help="print a graded submission's points as `Points X/Y`; in GitHub Actions "
        "also the job summary and GitHub Classroom's runner result")
    parser.add_argument("out", type=Path, metavar="OUT", help="the --out folder of grade")
    parser.add_argument("--submission", metavar="ID",
                        help="which submission (default: the only one in OUT)")
    parser.set_defaults(func=cmd_points)
