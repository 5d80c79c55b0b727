"""Pure writers: gradebook CSV, Gradescope results.json, the student's feedback.md and .html.

Each writer takes result records and returns text; the caller decides where it goes. Everything
embedded from a submission (messages, output) is escaped for the format it lands in: HTML
escaped, Markdown fences unbreakable, a gradebook cell never read as a spreadsheet formula,
and what is printed to a terminal with its control characters made visible.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from ..core.catalogue import N_, _, current_language
from ..core.errors import Outcome
from ..core.results import (
    CaseResult,
    ReviewFlag,
    SubmissionResult,
    SubmissionStatus,
)
from ..core.templates import render
from ..core.text import visible

GRADEBOOK_FIXED = ("submission", "score", "max_score")
GRADEBOOK_TAIL = ("status", "message")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet cell starting so is a formula


def _number(value: float) -> float | int:
    rounded = round(value, 4)
    return int(rounded) if rounded == int(rounded) else rounded


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace to one line and cap its length (for CSV cells)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def text_cell(text: str) -> str:
    """A gradebook cell of text from a submission, never run as a formula by a spreadsheet
    (OWASP's CSV injection advice: a leading ``'`` makes the cell plain text)."""
    return f"'{text}" if text.startswith(FORMULA_START) else text


def gradebook_header(questions: Sequence[str]) -> list[str]:
    """Columns of gradebook.csv: fixed ones, one per question in order, then status, message."""
    return [*GRADEBOOK_FIXED, *questions, *GRADEBOOK_TAIL]


def review_summary(result: SubmissionResult) -> str:
    """``needs review: conv2d (computed_attribute at cell 5, line 3); ...`` or ""."""
    flags = result.review_flags
    if not flags:
        return ""
    parts = []
    for flag in flags[:5]:
        where = f" at {flag.where()}" if flag.cell is not None else ""
        parts.append(f"{flag.question or 'notebook'} ({flag.kind}{where})")
    more = f" and {len(flags) - 5} more" if len(flags) > 5 else ""
    return "needs review: " + "; ".join(parts) + more


def review_list(results: Sequence[SubmissionResult]) -> str:
    """For the instructor's terminal at the end of a batch: every flag with cell, line and what
    was seen, one line each, control characters made visible (the seen code is the student's)."""
    flagged = [(r.submission_id, flag) for r in results for flag in r.review_flags]
    if not flagged:
        return ""
    lines = [f"needs review ({len(flagged)} flag(s); scores stand until a person decides):"]
    lines += [f"  {sub_id}: {flag.describe()}" for sub_id, flag in flagged]
    return "\n".join(visible(line, newlines=False) for line in lines) + "\n"


def gradebook_row(result: SubmissionResult, questions: Sequence[str]) -> list[str]:
    """One gradebook row; a question with no result (not graded at all) is left empty."""
    by_name = {q.name: q for q in result.questions}
    scores = [str(_number(by_name[q].score)) if q in by_name else "" for q in questions]
    message = "; ".join(m for m in (review_summary(result), result.message) if m)
    return [
        text_cell(result.submission_id),
        str(_number(result.score)),
        str(_number(result.max_score)),
        *scores,
        result.status.value,
        text_cell(one_line(message)),
    ]


def gradebook_csv(results: Sequence[SubmissionResult], questions: Sequence[str]) -> str:
    """The whole gradebook as CSV text, rows sorted by submission id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(gradebook_header(questions))
    for result in sorted(results, key=lambda r: r.submission_id):
        writer.writerow(gradebook_row(result, questions))
    return buffer.getvalue()


def _gradescope_test(case: CaseResult, number: str) -> dict:
    entry = {
        "name": f"{case.question}: {case.name}",
        "number": number,
        "score": _number(case.score),
        "max_score": _number(case.max_score),
        "status": "passed" if case.outcome is Outcome.PASSED else "failed",
        "output": case.message or ("passed" if case.outcome is Outcome.PASSED else case.outcome),
        "output_format": "text",
        "tags": [case.question, case.outcome.value],
        "visibility": "hidden" if case.hidden else "visible",
        "extra_data": {"question": case.question, "outcome": case.outcome.value},
    }
    return entry


REVIEW = N_("needs a teacher's review (the points may change)")


def _rule_entry(question: str, number: str, label: str, text: str, status: str) -> dict:
    return {
        "name": f"{question}: {label}",
        "number": number,
        "score": 0,
        "max_score": 0,
        "status": status,
        "output": text,
        "output_format": "text",
        "visibility": "visible",
    }


def _flag_data(flag: ReviewFlag) -> dict:
    return {"question": flag.question, "kind": flag.kind, "cell": flag.cell, "line": flag.line,
            "seen": flag.seen, "reason": flag.reason}


def gradescope_results(result: SubmissionResult, max_score: float | None = None) -> str:
    """Gradescope's results.json: one test entry per test case, hidden ones marked hidden."""
    tests = []
    for q_index, question in enumerate(result.questions, start=1):
        for c_index, case in enumerate(question.cases, start=1):
            tests.append(_gradescope_test(case, f"{q_index}.{c_index}"))
        for note in question.notes:
            tests.append(_rule_entry(question.name, f"{q_index}.0", "rule", note, "failed"))
        for flag in question.review:
            text = f"{_(REVIEW)}: {flag.describe_for_student()}"
            tests.append(_rule_entry(question.name, f"{q_index}.0", "needs review", text,
                                     "passed"))
    document: dict = {
        "score": _number(result.score),
        "output": result.message or "Graded.",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "submission": result.submission_id,
            "status": result.status.value,
            "max_score": _number(result.max_score if max_score is None else max_score),
            "needs_review": [_flag_data(flag) for flag in result.review_flags],
            **result.details.as_dict(),
        },
    }
    leaderboard = _leaderboard(result)
    if leaderboard:
        document["leaderboard"] = leaderboard
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def _leaderboard(result: SubmissionResult) -> list[dict]:
    """Gradescope's leaderboard: each measured model accuracy, in percent, higher is better."""
    evaluation = result.details.evaluation
    if evaluation is None:
        return []
    return [
        {"name": f"{question} ({evaluation.dataset})", "value": round(100 * m.accuracy, 2),
         "order": "desc"}
        for question, m in evaluation.models.items() if m.accuracy is not None
    ]


def _md_escape(text: str) -> str:
    """Escape text for Markdown: a fenced block cannot be closed by what it quotes."""
    return text.replace("```", "`\u200b``")


OUTCOME_TEXT = {
    Outcome.PASSED: N_("passed"),
    Outcome.FAILED: N_("failed"),
    Outcome.ERROR: N_("error in the code"),
    Outcome.TIMEOUT: N_("time limit exceeded"),
    Outcome.SKIPPED: N_("not run"),
}
ISOLATION_TEXT = {
    "bwrap": N_("bubblewrap sandbox (full isolation)"),
    "uid": N_("a separate unprivileged user (no bubblewrap)"),
    "process": N_("a separate process with limits (no bubblewrap: weaker isolation)"),
}
DATASET_TEXT = {
    "cifar10": N_("the real CIFAR-10 test set"),
    "synthetic": N_("a synthetic set in the CIFAR-10 format"),
}
CELL_TEXT = {
    "error": N_("error"),
    "timeout": N_("time limit exceeded"),
    "died": N_("the Python process ended"),
    "interrupted": N_("interrupted"),
    "refused": N_("not executed"),
}


SCORED_ZERO = N_("Question scored 0:")
NEEDS_REVIEW = N_("Needs a teacher's review:")


def _translated(table: dict[str, str], key: str) -> str:
    return _(table[key]) if key in table else key


def run_facts(result: SubmissionResult) -> list[str]:
    """How the work was checked (for the student): isolation, tests, data, cells that failed."""
    details = result.details
    facts = []
    if details.isolation is not None:
        tests = _("public only") if details.public_tests_only else _("public and hidden")
        facts.append(_("Checked in: {isolation}; tests: {tests}.").format(
            isolation=_translated(ISOLATION_TEXT, details.isolation.level), tests=tests))
    if details.evaluation is not None and details.evaluation.dataset:
        facts.append(_("The models' accuracy was measured on: {dataset}.").format(
            dataset=_translated(DATASET_TEXT, details.evaluation.dataset)))
    failed = [
        f"{cell.index + 1} ({_translated(CELL_TEXT, cell.status)})"
        for cell in details.cells or () if cell.status in CELL_TEXT
    ]
    if failed:
        facts.append(_("Cells that did not run as they should: {cells}.").format(
            cells=", ".join(failed)))
    return facts


def _case_label(case: CaseResult) -> str:
    return _("hidden test") if case.hidden else _("test")


def _review_text(flag: ReviewFlag) -> str:
    return _("{reason}. A person will look at this code; the points may change.").format(
        reason=flag.describe_for_student())


def feedback_markdown(result: SubmissionResult, notices: Sequence[str] = ()) -> str:
    """The student's feedback: totals, then each question with what failed and why."""
    lines = [
        "# " + _("Grading results: {submission}").format(
            submission=_md_escape(result.submission_id)),
        "",
        "**" + _("Total: {score} of {max_score}").format(
            score=_number(result.score), max_score=_number(result.max_score)) + "**",
        "",
    ]
    for fact in run_facts(result):
        lines += [_md_escape(fact), ""]
    if result.status is SubmissionStatus.ERROR:
        lines += [_("The work could not be fully graded:"), "", "```",
                  _md_escape(result.message), "```", ""]
    for notice in notices:
        lines += [f"> {_md_escape(one_line(notice, 1000))}", ""]
    for question in result.questions:
        lines.append(
            f"## {question.name}: {_number(question.score)} / {_number(question.max_score)}"
        )
        lines.append("")
        for note in question.notes:
            lines += [f"**{_(SCORED_ZERO)}** {_md_escape(note)}", ""]
        for flag in question.review:
            lines += [f"**{_(NEEDS_REVIEW)}** {_md_escape(_review_text(flag))}", ""]
        for case in question.cases:
            lines.append(f"- {_case_label(case)} `{case.name}`: {_(OUTCOME_TEXT[case.outcome])}")
            if case.message:  # failures say why; measurements say what was measured
                lines += [
                    "",
                    "  ```",
                    *("  " + s for s in _md_escape(case.message).splitlines()),
                    "  ```",
                ]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- feedback.html


def feedback_html(result: SubmissionResult, notices: Sequence[str] = ()) -> str:
    """The student's feedback as a standalone HTML page (templates/feedback.html): the same
    content as feedback.md. The template autoescapes everything from the submission (ids,
    messages, output, seen code)."""
    questions = [
        {"question": q, "score": _number(q.score), "max_score": _number(q.max_score),
         "review": [_review_text(flag) for flag in q.review],
         "cases": [{"case": c, "label": _case_label(c), "passed": c.outcome is Outcome.PASSED,
                    "outcome": _(OUTCOME_TEXT[c.outcome])} for c in q.cases]}
        for q in result.questions
    ]
    return render("feedback.html", language=current_language(), result=result,
                  score=_number(result.score), max_score=_number(result.max_score),
                  facts=run_facts(result), failed=result.status is SubmissionStatus.ERROR,
                  notices=[one_line(n, 1000) for n in notices], questions=questions)
