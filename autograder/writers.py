"""Pure writers: gradebook CSV, Gradescope results.json, and the student's feedback.md.

Each writer takes result records and returns text; the caller decides where it goes. Everything
embedded from a submission (messages, output) is escaped for the format it lands in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from .errors import Outcome
from .results import CaseResult, ReviewFlag, SubmissionResult, SubmissionStatus

GRADEBOOK_FIXED = ("submission", "score", "max_score")
GRADEBOOK_TAIL = ("status", "message")


def _number(value: float) -> float | int:
    rounded = round(value, 4)
    return int(rounded) if rounded == int(rounded) else rounded


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace to one line and cap its length (for CSV cells)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


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
    """For the instructor at the end of a batch: every flag with cell, line and what was seen."""
    flagged = [(r.submission_id, flag) for r in results for flag in r.review_flags]
    if not flagged:
        return ""
    lines = [f"needs review ({len(flagged)} flag(s); scores stand until a person decides):"]
    lines += [f"  {sub_id}: {flag.describe()}" for sub_id, flag in flagged]
    return "\n".join(lines) + "\n"


def gradebook_row(result: SubmissionResult, questions: Sequence[str]) -> list[str]:
    """One gradebook row; a question with no result (not graded at all) is left empty."""
    by_name = {q.name: q for q in result.questions}
    scores = [str(_number(by_name[q].score)) if q in by_name else "" for q in questions]
    message = "; ".join(m for m in (review_summary(result), result.message) if m)
    return [
        result.submission_id,
        str(_number(result.score)),
        str(_number(result.max_score)),
        *scores,
        result.status.value,
        one_line(message),
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


REVIEW_RU = "нужна проверка преподавателем (баллы могут измениться)"


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
            text = f"{REVIEW_RU}: {flag.describe_ru()}"
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
            **result.details,
        },
    }
    leaderboard = _leaderboard(result)
    if leaderboard:
        document["leaderboard"] = leaderboard
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def _leaderboard(result: SubmissionResult) -> list[dict]:
    """Gradescope's leaderboard: each measured model accuracy, in percent, higher is better."""
    models = result.details.get("evaluation", {}).get("models", {})
    dataset = result.details.get("evaluation", {}).get("dataset", "")
    return [
        {"name": f"{question} ({dataset})", "value": round(100 * m["accuracy"], 2),
         "order": "desc"}
        for question, m in models.items() if m.get("accuracy") is not None
    ]


def _md_escape(text: str) -> str:
    """Escape text for Markdown: a fenced block cannot be closed by what it quotes."""
    return text.replace("```", "`\u200b``")


_OUTCOME_RU = {
    Outcome.PASSED: "пройден",
    Outcome.FAILED: "не пройден",
    Outcome.ERROR: "ошибка в коде",
    Outcome.TIMEOUT: "превышено время",
    Outcome.SKIPPED: "не запускался",
}


def feedback_markdown(result: SubmissionResult, notices: Sequence[str] = ()) -> str:
    """The student's feedback: totals, then each question with what failed and why."""
    lines = [
        f"# Результаты проверки: {_md_escape(result.submission_id)}",
        "",
        f"**Итог: {_number(result.score)} из {_number(result.max_score)}**",
        "",
    ]
    if result.status is SubmissionStatus.ERROR:
        lines += [
            "Работу не удалось проверить полностью:",
            "",
            "```",
            _md_escape(result.message),
            "```",
            "",
        ]
    for notice in notices:
        lines += [f"> {_md_escape(one_line(notice, 1000))}", ""]
    for question in result.questions:
        lines.append(
            f"## {question.name}: {_number(question.score)} / {_number(question.max_score)}"
        )
        lines.append("")
        for note in question.notes:
            lines += [f"**Вопрос оценён в 0:** {_md_escape(note)}", ""]
        for flag in question.review:
            lines += [f"**Нужна проверка преподавателем:** {_md_escape(flag.describe_ru())}. "
                      "Этот код посмотрит человек; баллы могут измениться.", ""]
        for case in question.cases:
            label = "скрытый тест" if case.hidden else "тест"
            status = _OUTCOME_RU[case.outcome]
            lines.append(f"- {label} `{case.name}`: {status}")
            if case.message:  # failures say why; measurements say what was measured
                lines += [
                    "",
                    "  ```",
                    *("  " + s for s in _md_escape(case.message).splitlines()),
                    "  ```",
                ]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
