"""``grader.py new NAME``: a new assignment that assigns and grades as it is.

``create`` writes four files under a project root:

- ``solutions/<name>/<name>.ipynb``: a master notebook in otter-assign's v1 format, laid out
  like the lesson's own (raw config cell, ``# BEGIN QUESTION`` ... ``# END QUESTION``, a
  public and a hidden test), with Russian prose and one example question (``standardize``, a
  small NumPy function) whose tests draw their inputs in the harness (fixed seed in the
  public test, the harness's ``seed`` in the hidden one);
- ``solutions/<name>/assignment.toml``: commented, allowing numpy and matplotlib in the
  sandbox;
- ``tests/mutants/<name>.toml``: a degenerate answer and two classic bugs of the example
  question, so that the test suite's per-assignment checks pass on the new assignment as it
  is;
- ``tests/variants/<name>.toml``: another correct solution of the example question, which the
  suite grades under many draws beside the reference (the seed sweep).

The caller (``cli.cmd_new``) then generates ``assignments/<name>/`` and
``solutions/<name>/tests/`` as ``grader.py assign NAME`` does.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..core.assignments import CONFIG_FILE, PROJECT_ROOT
from ..core.catalogue import _
from ..core.errors import UsageError
from ..core.templates import render

NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9_]{0,62}[a-z0-9])?")
EXAMPLE_QUESTION = "standardize"


class ScaffoldError(UsageError, ValueError):
    """The requested assignment cannot be created; the message says why and what to do."""


@dataclass(frozen=True)
class Scaffold:
    """The files ``create`` wrote, relative to the project root."""

    name: str
    master: str
    config: str
    mutants: str
    variants: str

    @property
    def files(self) -> tuple[str, ...]:
        """Every file written, in the order they were written."""
        return (self.master, self.config, self.mutants, self.variants)


def check_name(name: str) -> None:
    """Refuse a name that cannot be a folder, a notebook stem and an otter assignment name."""
    if not NAME_PATTERN.fullmatch(name) or "__" in name or not re.search("[a-z]", name):
        raise ScaffoldError(
            f"invalid assignment name {name!r}: use lowercase Latin letters, digits and single "
            "underscores, starting and ending with a letter or digit, at most 64 characters, "
            "with at least one letter (e.g. 04_batch_norm)"
        )


def paths_for(name: str, root: Path) -> tuple[Path, Path, Path, Path]:
    """(master notebook, assignment.toml, mutants file, variants file) of assignment ``name``
    under ``root``."""
    source = root / "solutions" / name
    mutants = root / "tests" / "mutants" / f"{name}.toml"
    variants = root / "tests" / "variants" / f"{name}.toml"
    return source / f"{name}.ipynb", source / CONFIG_FILE, mutants, variants


def existing_files(name: str, root: Path) -> list[Path]:
    """Files or folders of ``name`` that already exist (``create`` refuses to touch them)."""
    candidates = [
        root / "solutions" / name,
        root / "assignments" / name,
        *paths_for(name, root)[2:],
    ]
    return [path for path in candidates if path.exists()]


def create(name: str, title: str | None = None, root: Path = PROJECT_ROOT) -> Scaffold:
    """Write the master notebook, its config and its mutants for a new assignment ``name``.

    Raises :class:`ScaffoldError` (nothing written) for an invalid name or one whose files
    already exist.
    """
    check_name(name)
    taken = existing_files(name, root)
    if taken:
        listed = ", ".join(str(path.relative_to(root)) for path in taken)
        raise ScaffoldError(
            f"assignment {name!r} already exists ({listed}); choose another name, or edit "
            f"solutions/{name}/{name}.ipynb and run `python grader.py assign {name}`"
        )
    title = (title or "").strip() or _("Assignment {name}").format(name=name)
    if "\n" in title:
        raise ScaffoldError("the title must be one line")
    master, config, mutants, variants = paths_for(name, root)
    master.parent.mkdir(parents=True)
    nbformat.write(master_notebook(name, title), master)
    config.write_text(CONFIG_TEMPLATE.format(name=name), encoding="utf-8")
    mutants.parent.mkdir(parents=True, exist_ok=True)
    mutants.write_text(MUTANTS_TEMPLATE.format(name=name), encoding="utf-8")
    variants.parent.mkdir(parents=True, exist_ok=True)
    variants.write_text(VARIANTS_TEMPLATE.format(name=name), encoding="utf-8")
    return Scaffold(
        name,
        *(path.relative_to(root).as_posix() for path in (master, config, mutants, variants)),
    )


def generate(name: str, root: Path = PROJECT_ROOT) -> list[str]:
    """Generate ``assignments/<name>/`` and ``solutions/<name>/tests/`` as ``grader.py assign
    NAME`` does; returns the generated files, relative to ``root``."""
    from ..core.assignments import load_assignment
    from . import assign as authoring

    assignment = load_assignment(name, root)
    try:
        built = authoring.build(assignment, root)
    except authoring.AuthoringError as exc:
        raise authoring.AuthoringError(
            f"{exc}\nThe master notebook is written; fix the problem and run "
            f"`python grader.py assign {name}`."
        ) from None
    authoring.write(built, assignment, root)
    return sorted(built.files)


def report(made: Scaffold, generated: list[str]) -> str:
    """What ``grader.py new`` prints: the files and the instructor's next steps."""
    lines = [f"created assignment {made.name}:"]
    lines += [f"  {rel}" for rel in made.files]
    lines.append(f"generated (as `python grader.py assign {made.name}` does):")
    lines += [f"  {rel}" for rel in generated]
    lines += [
        "next:",
        f"  1. open {made.master} in Jupyter; replace the example question "
        f"`{EXAMPLE_QUESTION}` with yours (docs/AUTHORING.md)",
        f"  2. write a degenerate and a classic-bug mutant per question in {made.mutants}, "
        f"and other correct solutions in other styles in {made.variants}",
        f"  3. python grader.py assign {made.name}; make test (every correct solution under "
        f"25-50 draws); commit solutions/{made.name}/, assignments/{made.name}/, {made.mutants} "
        f"and {made.variants}",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the notebook

MASTER_TEMPLATE = "master_notebook.cells.j2"  # under autograder/templates/
_CELL_MARKER = re.compile(r"^%% (raw|markdown|code)\n", re.MULTILINE)
_NEW_CELL = {"raw": nbformat.v4.new_raw_cell, "markdown": nbformat.v4.new_markdown_cell,
             "code": nbformat.v4.new_code_cell}


def _cell_id(name: str, index: int) -> str:
    return hashlib.sha256(f"{name}/{index}".encode()).hexdigest()[:8]


def master_notebook(name: str, title: str) -> nbformat.NotebookNode:
    """The master notebook of a new assignment: one example question, public + hidden test
    (templates/master_notebook.cells.j2, its prose and messages in the run's language)."""
    text = render(MASTER_TEMPLATE, assignment=name, title=title)
    marked = _CELL_MARKER.split(text)[1:]  # kind, source, kind, source, ...
    cells = [_NEW_CELL[kind](source.strip("\n"))
             for kind, source in zip(marked[::2], marked[1::2], strict=True)]
    for index, cell in enumerate(cells):
        cell["id"] = _cell_id(name, index)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


# ----------------------------------------------------------------------------- the other files

CONFIG_TEMPLATE = """\
# Grading config for {name}. Points live in the master notebook (each BEGIN QUESTION cell);
# every key here is optional and docs/AUTHORING.md lists them all. Unknown keys are errors.

[sandbox]
# What student code may import beyond the standard library (and what these packages
# require). Under bubblewrap nothing else exists inside the sandbox. Add "torch" for an
# assignment on PyTorch modules; leave torch and scipy out where students must write a
# convolution or pooling by hand.
packages = ["numpy", "matplotlib"]

# [limits]                 # time budgets in seconds (these are the defaults)
# cell_timeout_s = 60      # one notebook cell
# call_timeout_s = 20      # one call into student code from a test
# total_timeout_s = 900    # the whole submission

# [questions.standardize]
# no_library_routines = true   # a library convolution / pooling routine costs the question
"""

VARIANTS_TEMPLATE = """\
# Other correct solutions of solutions/{name}, in other styles than the reference: each
# `[[variant.define]]` replaces one top-level definition of the master notebook. The test
# suite grades each under 25 draws of the hidden tests' randomness (bench/seed_sweep.py: 1,000)
# and every one must score full marks under every draw (docs/AUTHORING.md, Fair under every
# draw). When you replace the example question, write variants of yours.

[[variant]]
id = "standardize_by_hand"
style = "mean and variance computed by hand with sums, channel axis moved first, float64"
[[variant.define]]
name = "standardize"
source = '''
def standardize(x, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    channels = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    mean = channels.sum(axis=1) / channels.shape[1]
    var = ((channels - mean[:, None]) ** 2).sum(axis=1) / channels.shape[1]
    shape = (1, x.shape[1], 1, 1)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
'''
"""

MUTANTS_TEMPLATE = """\
# Classic student bugs for solutions/{name}, as edits of the master notebook's solution
# code; the test suite grades each and checks that exactly the questions in `breaks` lose
# points. Each `old` occurs exactly once in the notebook's code cells (public tests included).
# Every question needs a degenerate answer (`scores_zero = true`): it must score exactly 0.
# When you replace the example question, replace these mutants too (docs/AUTHORING.md).

[[mutant]]
id = "standardize_whole_array"
bug = "standardize uses the mean and variance of the whole array, not of each channel"
breaks = ["standardize"]
[[mutant.edit]]
old = "mean = x.mean(axis=(0, 2, 3), keepdims=True)"
new = "mean = x.mean()"
[[mutant.edit]]
old = "var = x.var(axis=(0, 2, 3), keepdims=True)"
new = "var = x.var()"

[[mutant]]
id = "standardize_divides_by_variance"
bug = "standardize divides by the variance instead of the standard deviation"
breaks = ["standardize"]
[[mutant.edit]]
old = "return (x - mean) / np.sqrt(var + eps)"
new = "return (x - mean) / (var + eps)"

# Degenerate answers: zeros or constants of the right shape and type.

[[mutant]]
id = "zeros_standardize"
bug = "standardize returns zeros of the right shape"
breaks = ["standardize"]
scores_zero = true
[[mutant.edit]]
old = "return (x - mean) / np.sqrt(var + eps)"
new = "return np.zeros_like(x)"
"""
