"""Packaged copies of an assignment for places outside this repository: what grading needs and
nothing more.

Two kinds use this: a student kit for GitHub Classroom (:mod:`.classroom`, public tests only)
and a Gradescope bundle (:mod:`.gradescope`, all tests). Neither holds the master notebook, so
no reference solution leaves the repository. Both carry ``grader.py``, the ``autograder``
package, ``requirements.txt`` and ``bundle/<name>/`` (``assignment.toml``, probes, fixtures,
the grader-side tests and ``bundle.toml`` with the question order), which
:func:`autograder.core.assignments.load_assignment` reads when there is no master notebook.

Hidden cases are removed from a test file by parsing it (:func:`public_test_source`), and the
result is checked with otter's own loader: the same public cases, the same points each. A public
copy carries only the probes its public tests call (:func:`public_probes_source`): the rest
belong to the hidden tests and say what they check.
"""

from __future__ import annotations

import ast
import logging
import re
import tomllib
from pathlib import Path

from ..core.assignments import (
    BUNDLE_DIR,
    BUNDLE_FILE,
    CONFIG_FILE,
    PROJECT_ROOT,
    Assignment,
    tested_question_names,
)
from ..core.errors import UsageError
from ..grading.testfiles import TestFileError, parse_question_tests

log = logging.getLogger(__name__)

PACKAGE = "autograder"
HEADER_NAMES = frozenset({"OK_FORMAT", "name", "points"})  # module-level names otter reads


class PackagingError(UsageError, RuntimeError):
    """A packaged copy cannot be made safely; the message says what to fix."""


def _test_case_hidden(decorator: ast.expr, where: str, function: str) -> bool | None:
    """``hidden`` of an otter ``@test_case(...)`` decorator; None when it is another decorator."""
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call is not None else decorator
    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
    if name != "test_case":
        return None
    if call is None:
        raise PackagingError(f"{where}: {function}: write @test_case(...) with parentheses")
    value: ast.expr | None = next((k.value for k in call.keywords if k.arg == "hidden"), None)
    if value is None and len(call.args) >= 3:  # test_case(name, points, hidden, ...)
        value = call.args[2]
    if value is None:
        return False
    try:
        hidden = ast.literal_eval(value)
    except ValueError:
        hidden = None
    if not isinstance(hidden, bool):
        raise PackagingError(
            f"{where}: {function}: hidden= must be the literal True or False, or the public copy "
            "cannot tell whether the case is hidden"
        )
    return hidden


def public_test_source(source: str, where: str) -> str | None:
    """The text of an otter test file with its hidden cases removed (None: no public case).

    Each kept case keeps the points it has in the full file (otter splits a question's points
    over all its cases, hidden ones included), written as an explicit ``points = [...]`` list.
    Anything at the top level that is not an import, otter's header or a test case is refused:
    a helper there might belong to a hidden test.
    """
    try:
        tree = ast.parse(source, where)
        full = parse_question_tests(source, where)
    except (SyntaxError, TestFileError) as exc:
        raise PackagingError(f"cannot read the test file {where}: {exc}") from None
    drop: list[tuple[int, int]] = []  # 1-based inclusive line ranges
    points_lines: tuple[int, int] | None = None
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
            node.targets[0], ast.Name
        ) and node.targets[0].id in HEADER_NAMES:
            if node.targets[0].id == "points":
                points_lines = (node.lineno, node.end_lineno or node.lineno)
            continue
        if isinstance(node, ast.FunctionDef):
            flags = [_test_case_hidden(d, where, node.name) for d in node.decorator_list]
            flags = [f for f in flags if f is not None]
            if len(flags) == 1:
                if flags[0]:
                    first = min(d.lineno for d in node.decorator_list)
                    drop.append((first, node.end_lineno or node.lineno))
                continue
        raise PackagingError(
            f"{where}, line {node.lineno}: a top-level {type(node).__name__} outside the test "
            "cases; the public copy cannot tell whether a hidden test needs it. Move it into the "
            "test functions that use it."
        )
    public = [case for case in full.cases if not case.hidden]
    if not public:
        return None
    points_line = f"points = {[case.points for case in public]!r}"
    lines = source.splitlines()
    if points_lines is not None:
        drop.append(points_lines)
    kept = [line for number, line in enumerate(lines, start=1)
            if not any(start <= number <= end for start, end in drop)]
    if points_lines is not None:  # put the new points where the old assignment was
        before = sum(1 for n in range(1, points_lines[0])
                     if not any(start <= n <= end for start, end in drop))
        kept.insert(before, points_line)
    else:
        kept.append(points_line)
    header = ("# Public test cases only (hidden ones removed when this copy was made); points "
              "as in the full file.")
    text = header + "\n" + re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n") + "\n"
    _check_public_copy(text, full.cases, where)
    return text


def _check_public_copy(text: str, full_cases: tuple, where: str) -> None:
    """The copy must load with otter's loader to exactly the public cases, same points."""
    copy = parse_question_tests(text, f"{where} (public copy)")
    got = [(c.name, c.points, c.hidden) for c in copy.cases]
    want = [(c.name, c.points, False) for c in full_cases if not c.hidden]
    if got != want:
        raise PackagingError(
            f"{where}: the public copy does not load to the file's public cases "
            f"(got {got}, expected {want}); this is a grader bug, please report it"
        )


def probes_called(source: str, where: str) -> set[str]:
    """The names a test file calls as ``probes.<name>``.

    Any other use of ``probes`` (``getattr(probes, ...)``, passing it on) is refused: the public
    copy could not tell which probes the file needs.
    """
    tree = ast.parse(source, where)
    called: set[str] = set()
    attributes = {id(node.value): node.attr for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "probes":
            if id(node) not in attributes:
                raise PackagingError(
                    f"{where}, line {node.lineno}: `probes` used other than as probes.NAME; the "
                    "public copy cannot tell which probes this test needs"
                )
            called.add(attributes[id(node)])
    return called


def public_probes_source(source: str, used: set[str], where: str) -> str | None:
    """probes.py with only the definitions the public tests reach (None: they call none).

    Kept: every top-level statement that is not a function or class definition (imports,
    constants; ``__all__`` is cut down to the kept names), the definitions in ``used`` and
    every definition they (or the kept statements) name, transitively. Probes only the hidden
    tests call stay out of a student's copy.
    """
    if not used:
        return None
    try:
        tree = ast.parse(source, where)
    except SyntaxError as exc:
        raise PackagingError(f"cannot read {where}: {exc}") from None
    definitions = {node.name: node for node in tree.body
                   if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    missing = sorted(used - set(definitions))
    if missing:
        raise PackagingError(f"{where}: public tests call probes.{missing[0]}, which it does not "
                             "define")

    def names_in(node: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(definitions)

    def is_all(node: ast.stmt) -> bool:
        return isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)

    keep = set(used)
    for node in tree.body:
        if node not in definitions.values() and not is_all(node):
            keep |= names_in(node)
    todo = list(keep)
    while todo:
        for name in names_in(definitions[todo.pop()]) - keep:
            keep.add(name)
            todo.append(name)
    lines = source.splitlines()
    out: list[str] = []
    cursor = 0  # 0-based index of the next line of ``lines`` to copy
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        last = node.end_lineno or node.lineno
        if node in definitions.values() and node.name not in keep:
            out += lines[cursor:first]
            cursor = last
        elif is_all(node):
            out += lines[cursor:first]
            names = [n for n in ast.literal_eval(node.value) if n in keep]
            out.append(f"__all__ = {names!r}")
            cursor = last
    out += lines[cursor:]
    header = ("# Only the probes the public tests call (the hidden tests' ones removed when this "
              "copy was made).")
    text = header + "\n" + re.sub(r"\n{3,}", "\n\n\n", "\n".join(out)).strip("\n") + "\n"
    try:
        compile(text, f"{where} (public copy)", "exec")
    except SyntaxError as exc:
        raise PackagingError(f"{where}: the public copy does not compile ({exc}); this is a "
                             "grader bug, please report it") from None
    return text


def check_fresh(assignment: Assignment) -> None:
    """The generated files must match the master notebook (else the copy would be stale)."""
    from ..authoring import assign as authoring

    stale = authoring.stale_files(authoring.build(assignment), assignment)
    if stale:
        raise PackagingError(
            f"{assignment.name}: generated files are out of date ({', '.join(stale)}); run "
            f"`python grader.py assign {assignment.name}`, commit, and package again"
        )


# What the Gradescope bundle and the student kit install first, from PyTorch's CPU index: a
# release without the known torch.load(weights_only=True) escapes (CVE-2025-32434,
# CVE-2026-24747), at most the newest one this project was tested with (pyproject.toml).
TORCH_PIN = "'torch>=2.10,<=2.14.1' 'torchvision>=0.25,<=0.29.1'"


def requirements_text(root: Path = PROJECT_ROOT) -> str:
    """requirements.txt for the grader: the project's runtime dependencies."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    lines = ["# The grader's runtime dependencies (from pyproject.toml). Install the CPU build of",
             f"# torch and torchvision first: pip install {TORCH_PIN} --index-url "
             "https://download.pytorch.org/whl/cpu",
             *data["project"]["dependencies"]]
    return "\n".join(lines) + "\n"


def grader_files(root: Path = PROJECT_ROOT) -> dict[str, bytes]:
    """grader.py, every module of the package, its templates and catalogue, and
    requirements.txt, by relative path."""
    files = {"grader.py": (root / "grader.py").read_bytes(),
             "requirements.txt": requirements_text(root).encode()}
    package = root / PACKAGE
    shipped = [*package.rglob("*.py"), *package.glob("locale/*/LC_MESSAGES/*.po"),
               *(p for p in package.glob("templates/*") if p.is_file())]
    for path in sorted(shipped):
        if "__pycache__" not in path.parts:
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def bundle_files(assignment: Assignment, tests: str) -> dict[str, bytes]:
    """``bundle/<name>/``: config, fixtures, tests (``"public"`` or ``"all"``), probes (for
    ``"public"``, only those the public tests call) and ``bundle.toml``. Never the master
    notebook."""
    if tests not in ("public", "all"):
        raise ValueError(f"tests must be 'public' or 'all', not {tests!r}")
    base = f"{BUNDLE_DIR}/{assignment.name}"
    files: dict[str, bytes] = {}
    config = assignment.source_dir / CONFIG_FILE
    if config.is_file():
        files[f"{base}/{CONFIG_FILE}"] = config.read_bytes()
    if assignment.fixtures_file is not None:  # the student notebook defines the same helpers
        files[f"{base}/{assignment.fixtures_file.name}"] = assignment.fixtures_file.read_bytes()
    probes_used: set[str] = set()
    questions = []
    for question in tested_question_names(assignment):
        path = assignment.tests_dir / f"{question}.py"
        if not path.is_file():
            raise PackagingError(f"no test file {path}; run `python grader.py assign "
                                 f"{assignment.name}`")
        source = path.read_text(encoding="utf-8")
        if tests == "public":
            public = public_test_source(source, str(path))
            if public is None:
                log.info(f"note: {question} has no public test; the student kit leaves it out")
                continue
            source = public
            probes_used |= probes_called(source, str(path))
        files[f"{base}/tests/{question}.py"] = source.encode("utf-8")
        questions.append(question)
    probes = assignment.probes_file
    if probes is not None:
        text: str | None = probes.read_text(encoding="utf-8")
        if tests == "public":
            text = public_probes_source(text, probes_used, str(probes))
        if text is not None:
            files[f"{base}/{probes.name}"] = text.encode("utf-8")
    kind = "a student kit: public tests only" if tests == "public" else "all tests"
    files[f"{base}/{BUNDLE_FILE}"] = (
        f"# {assignment.name}, packaged by grader.py ({kind}; no master notebook).\n"
        f"assignment = {assignment.name!r}\n"
        f"tests = {tests!r}\n"
        f"questions = [{', '.join(repr(q) for q in questions)}]\n"
    ).encode()
    return files


def write_tree(files: dict[str, bytes], dest: Path, executable: frozenset[str] = frozenset()
               ) -> None:
    """Write ``files`` (relative path -> bytes) under ``dest``; ``executable`` ones mode 0755."""
    for rel, content in sorted(files.items()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if rel in executable:
            path.chmod(0o755)


def empty_folder(dest: Path) -> None:
    """``dest`` must not exist or be empty: a kit is never mixed into other files."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise PackagingError(f"{dest} exists and is not an empty folder; choose a new --out")
