"""Pure writers: gradebook CSV, Gradescope results.json, the student's feedback.md and .html.

Each writer takes result records and returns text; the caller decides where it goes. Everything
embedded from a submission (messages, output) is escaped for the format it lands in: HTML
escaped, Markdown fences unbreakable, a gradebook cell never read as a spreadsheet formula,
and what is printed to a terminal with its control characters made visible.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence

from ..core.errors import Outcome
from ..core.results import (
    CaseResult,
    QuestionResult,
    ReviewFlag,
    SubmissionResult,
    SubmissionStatus,
)
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


_ISOLATION_RU = {
    "bwrap": "песочница bubblewrap (полная изоляция)",
    "uid": "отдельный непривилегированный пользователь (без bubblewrap)",
    "process": "отдельный процесс с лимитами (без bubblewrap: изоляция слабее)",
}


def isolation_level(details: dict) -> str | None:
    """The level a result was graded at (``extra_data.isolation`` is a dict; records written
    before it became one hold the level's name)."""
    isolation = details.get("isolation")
    if isinstance(isolation, dict):
        level = isolation.get("level")
        return level if isinstance(level, str) else None
    return isolation if isinstance(isolation, str) else None
_DATASET_RU = {
    "cifar10": "настоящий тестовый набор CIFAR-10",
    "synthetic": "синтетический набор в формате CIFAR-10",
}
_CELL_RU = {
    "error": "ошибка",
    "timeout": "превышено время",
    "died": "процесс Python завершился",
    "interrupted": "прервана",
    "refused": "не выполнялась",
}


def run_facts_ru(result: SubmissionResult) -> list[str]:
    """How the work was checked (for the student): isolation, tests, data, cells that failed."""
    details = result.details
    facts = []
    isolation = isolation_level(details)
    if isolation:
        tests = "только открытые" if details.get("tests") == "public" else "открытые и скрытые"
        facts.append(f"Проверка: {_ISOLATION_RU.get(isolation, isolation)}; тесты: {tests}.")
    evaluation = details.get("evaluation")
    if isinstance(evaluation, dict) and evaluation.get("dataset"):
        dataset = evaluation["dataset"]
        facts.append(f"Точность моделей измерена на данных: {_DATASET_RU.get(dataset, dataset)}.")
    failed = [
        f"{cell['index'] + 1} ({_CELL_RU.get(cell['status'], cell['status'])})"
        for cell in details.get("cells", ())
        if isinstance(cell, dict) and cell.get("status") in _CELL_RU
    ]
    if failed:
        facts.append("Ячейки, которые не выполнились как надо: " + ", ".join(failed) + ".")
    return facts


def feedback_markdown(result: SubmissionResult, notices: Sequence[str] = ()) -> str:
    """The student's feedback: totals, then each question with what failed and why."""
    lines = [
        f"# Результаты проверки: {_md_escape(result.submission_id)}",
        "",
        f"**Итог: {_number(result.score)} из {_number(result.max_score)}**",
        "",
    ]
    for fact in run_facts_ru(result):
        lines += [_md_escape(fact), ""]
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


# ----------------------------------------------------------------------------- feedback.html

_HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1b1b1b; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
td.num { text-align: right; }
pre { background: #f5f5f5; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
.passed { color: #1a7f37; } .failed { color: #b42318; }
.notice { border-left: 4px solid #d0a000; padding-left: .6rem; }
.flag { border-left: 4px solid #7a4cc2; padding-left: .6rem; }
"""


def _h(text: object) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def _html_case(case: CaseResult) -> list[str]:
    label = "скрытый тест" if case.hidden else "тест"
    css = "passed" if case.outcome is Outcome.PASSED else "failed"
    parts = [f'<li><span class="{css}">{_h(label)} <code>{_h(case.name)}</code>: '
             f"{_h(_OUTCOME_RU[case.outcome])}</span>"]
    if case.message:  # a failure says what was expected and what came; a measurement, its value
        parts.append(f"<pre>{_h(case.message)}</pre>")
    parts.append("</li>")
    return ["".join(parts)]


def _html_question(question: QuestionResult) -> list[str]:
    lines = [f'<section class="question"><h2>{_h(question.name)}: '
             f"{_h(_number(question.score))} / {_h(_number(question.max_score))}</h2>"]
    for note in question.notes:
        lines.append(f"<p><strong>Вопрос оценён в 0:</strong> {_h(note)}</p>")
    for flag in question.review:
        lines.append(f'<p class="flag"><strong>Нужна проверка преподавателем:</strong> '
                     f"{_h(flag.describe_ru())}. Этот код посмотрит человек; баллы могут "
                     "измениться.</p>")
    lines.append("<ul>")
    for case in question.cases:
        lines += _html_case(case)
    lines += ["</ul>", "</section>"]
    return lines


def _html_scores(result: SubmissionResult) -> list[str]:
    rows = [f'<tr><td>{_h(q.name)}</td><td class="num">{_h(_number(q.score))}</td>'
            f'<td class="num">{_h(_number(q.max_score))}</td></tr>' for q in result.questions]
    return ['<table class="scores"><tr><th>вопрос</th><th>баллы</th><th>из</th></tr>',
            *rows, "</table>"]


def feedback_html(result: SubmissionResult, notices: Sequence[str] = ()) -> str:
    """The student's feedback as a standalone HTML page: the same content as feedback.md.

    Everything from the submission (ids, messages, output, seen code) is HTML-escaped.
    """
    title = f"Результаты проверки: {result.submission_id}"
    lines = [
        "<!DOCTYPE html>", '<html lang="ru">', "<head>", '<meta charset="utf-8">',
        f"<title>{_h(title)}</title>", f"<style>{_HTML_STYLE}</style>", "</head>", "<body>",
        f"<h1>{_h(title)}</h1>",
        f'<p class="total"><strong>Итог: {_h(_number(result.score))} из '
        f"{_h(_number(result.max_score))}</strong></p>",
    ]
    lines += [f'<p class="fact">{_h(fact)}</p>' for fact in run_facts_ru(result)]
    if result.status is SubmissionStatus.ERROR:
        lines += ["<p>Работу не удалось проверить полностью:</p>",
                  f'<pre class="error">{_h(result.message)}</pre>']
    if notices:
        lines.append('<ul class="notices">')
        lines += [f'<li class="notice">{_h(one_line(n, 1000))}</li>' for n in notices]
        lines.append("</ul>")
    lines += _html_scores(result)
    for question in result.questions:
        lines += _html_question(question)
    lines += ["</body>", "</html>"]
    return "\n".join(lines) + "\n"
