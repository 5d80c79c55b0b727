"""The layout is the architecture: imports only go down the declared order of packages, and
no module imports itself back round a cycle inside its package.

The rules are import-linter contracts in pyproject.toml (``[tool.importlinter]``): a
``layers`` contract, exhaustive, over the stage packages in the order of the data flow (a
package may import its own modules and any package below it), and an ``acyclic_siblings``
contract over the whole package. import-linter (grimp) reads every import, at any depth:
inside functions and ``TYPE_CHECKING`` blocks too. The tests below run it on this package and
on copies with an upward import, a cycle and an undeclared package, so each rule is shown to
fail.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from autograder.core.assignments import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "autograder"
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
ORDER = next(c["layers"] for c in CONTRACTS["contracts"] if c["type"] == "layers")[::-1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the ``autograder`` package found under ``root``, with this
    project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), str(PYPROJECT), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_imports_only_go_down_and_no_package_holds_a_cycle():
    done = lint_imports(PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_every_package_says_its_job_and_what_it_may_import():
    for package in ORDER:
        init = PACKAGE / package / "__init__.py"
        if init.is_file():
            docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
            assert docstring and "import" in docstring.lower(), f"{init}: its job, its imports"


@pytest.fixture
def package_copy(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__", "locale", "templates"))
    return tmp_path


def test_an_upward_import_inside_a_function_is_caught(package_copy):
    errors = package_copy / "autograder" / "core" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8")
                      + "\n\ndef _late():\n    from ..batch.runner import grade_batch\n",
                      encoding="utf-8")
    done = lint_imports(package_copy)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "the stage packages import only downward BROKEN" in done.stdout
    assert "autograder.core.errors -> autograder.batch.runner" in done.stdout


def test_a_cycle_inside_a_package_is_caught(package_copy):
    records = package_copy / "autograder" / "outputs" / "records.py"  # the report imports it
    records.write_text(records.read_text(encoding="utf-8") + "\nfrom . import report\n",
                       encoding="utf-8")
    done = lint_imports(package_copy)
    assert done.returncode == 1 and "1 kept, 1 broken" in done.stdout, done.stdout[-3000:]
    assert "cycle" in done.stdout and "- .report -> .records (1 import)" in done.stdout


def test_a_package_outside_the_declared_order_is_caught(package_copy):
    extra = package_copy / "autograder" / "server"
    extra.mkdir()
    (extra / "__init__.py").write_text('"""A new package nobody placed."""\n', encoding="utf-8")
    done = lint_imports(package_copy)
    assert done.returncode == 1 and "autograder.server" in done.stdout, done.stdout[-3000:]
