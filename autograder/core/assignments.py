"""Discover assignments and load their frozen, validated configuration.

An assignment is a folder ``solutions/<name>/`` holding the master notebook ``<name>.ipynb``,
``assignment.toml`` (limits, library rules, accuracy thresholds, artifacts) and optionally
``probes.py``. Generated files live in ``solutions/<name>/tests/`` (grader-side tests) and
``assignments/<name>/`` (the student notebook).

A packaged copy of an assignment (a student kit or a Gradescope bundle, see
``autograder/integrations/bundles.py``) has no master notebook: ``bundle/<name>/bundle.toml``
beside the package gives the question order and says whether hidden tests are there at all.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalogue import DEFAULT_LANGUAGE, LANGUAGES
from .errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # autograder/core/assignments.py
CONFIG_FILE = "assignment.toml"
PROBES_FILE = "probes.py"
FIXTURES_FILE = "fixtures.py"
BUNDLE_DIR = "bundle"  # packaged assignments: bundle/<name>/, no master notebook
BUNDLE_FILE = "bundle.toml"
STRUCTURES = ("convolutional", "fully_connected")


class ConfigError(UsageError, ValueError):
    """The instructor's assignment configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class TimeBudgets:
    """Time budgets for one submission of this assignment, in seconds."""

    cell_timeout_s: float = 60.0
    call_timeout_s: float = 20.0
    total_timeout_s: float = 900.0


@dataclass(frozen=True)
class QuestionRules:
    """Extra grading rules for one test-graded question.

    ``graded_names``: the notebook names this question grades (default: the question's own
    name); every other parameter of its tests must be a harness name, a module or a fixture.
    ``structure``: what the model's forward pass must (``"convolutional"``) or must not
    (``"fully_connected"``) dispatch, decided from the operators recorded while it ran.
    """

    no_library_routines: bool = False
    allowed_routines: tuple[str, ...] = ()
    graded_names: tuple[str, ...] = ()
    structure: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_routines", tuple(self.allowed_routines))
        object.__setattr__(self, "graded_names", tuple(self.graded_names))

    @property
    def records_calls(self) -> bool:
        """True when the harness needs the worker's record of what the graded calls ran."""
        return self.no_library_routines or self.structure is not None


@dataclass(frozen=True)
class SandboxConfig:
    """What the worker of this assignment may import beyond the standard library.

    ``packages`` None: everything installed is visible. A list: only those distributions
    (and what they require) exist inside the bubblewrap sandbox; the process fallback blocks
    the other imports, which is weaker.
    """

    packages: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.packages is not None:
            object.__setattr__(self, "packages", tuple(self.packages))


DATASETS = ("cifar10", "synthetic")  # what a model can be graded on; thresholds for each


def _per_dataset(value: object, what: str) -> dict[str, float]:
    """``{cifar10 = 0.7, synthetic = 0.9}`` checked: exactly those keys, numbers in [0, 1]."""
    if not isinstance(value, dict) or set(value) != set(DATASETS):
        raise TypeError(f"{what} must be a table with exactly the keys {', '.join(DATASETS)}")
    if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in value.values()):
        raise TypeError(f"{what} values must be numbers between 0 and 1")
    return {name: float(value[name]) for name in DATASETS}


@dataclass(frozen=True)
class AccuracyQuestion:
    """A question scored by the harness from a saved model's accuracy on a held-out set.

    ``full_at`` / ``zero_at`` hold one threshold per dataset (real CIFAR-10 and the
    synthetic set): full credit at or above ``full_at``, none at or below ``zero_at``,
    linear between.
    """

    question: str
    model: str
    weights: str
    full_at: Mapping[str, float]
    zero_at: Mapping[str, float]
    points: float
    # numbers in the state_dict of the master notebook's own class (0: no reference); a
    # submitted state_dict over [evaluation] reference_ratio times its float32 bytes needs review
    reference_numbers: int = 0

    def __post_init__(self) -> None:
        if type(self.reference_numbers) is not int or self.reference_numbers < 0:
            raise TypeError("reference_numbers must be a whole number >= 0")
        object.__setattr__(self, "full_at", _per_dataset(self.full_at, "full_at"))
        object.__setattr__(self, "zero_at", _per_dataset(self.zero_at, "zero_at"))


@dataclass(frozen=True)
class ComparisonQuestion:
    """A question scored by comparing two accuracy questions' measured accuracies."""

    question: str
    better: str
    worse: str
    margin: Mapping[str, float]
    points: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "margin", _per_dataset(self.margin, "margin"))


@dataclass(frozen=True)
class Evaluation:
    """How saved models are evaluated (all limits checked by the harness)."""

    max_parameters: int = 5_000_000  # trainable parameters of the built model
    max_weights_bytes: int = 40_000_000  # the weights file itself, buffers included
    batch_size: int = 500  # images per request to the worker
    # The secret perturbation, drawn per run: random shifts up to this many pixels (0: none;
    # a shift costs a fully-connected model far more than a point), horizontal flips, and
    # Gaussian noise of this std in 0..255 pixel levels.
    shift_pixels: int = 0
    flip: bool = True
    noise_levels: float = 2.0
    secret_gap: float = 0.10  # official - secret accuracy above this needs review
    # Memorisation check on real data without a secret set: this many training images, drawn
    # per run, are graded too; official accuracy more than train_gap above theirs needs review.
    train_sample: int = 1000  # 0: off
    train_gap: float = 0.10
    # What a model of its declared architecture can be (grading/modelcheck.py): tensors taking
    # over this many times the bytes of the reference model in float32 need review (0: off),
    # and so does a submission bringing more than side_bytes besides its weights files.
    reference_ratio: float = 2.5
    side_bytes: int = 2_000_000
    gpu_memory_fraction: float = 0.45  # each GPU worker's share (a courtesy, see devices.py)
    # the normalisation the notebook's models expect (its CIFAR10_MEAN / CIFAR10_STD)
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, ...] = (0.2470, 0.2435, 0.2616)

    def __post_init__(self) -> None:
        for key in ("mean", "std"):
            value = tuple(getattr(self, key))
            if len(value) != 3 or not all(isinstance(v, int | float) and v >= 0 for v in value):
                raise TypeError(f"{key} must be three numbers, one per colour channel")
            object.__setattr__(self, key, value)


@dataclass(frozen=True)
class Retrain:
    """``--retrain``: the worker trains the student's class with the student's own training
    function under this budget (fixed seeds), and the harness evaluates what comes out."""

    function: str = "train_epoch"  # the notebook's train_epoch(model, loader, opt, loss, device)
    epochs: int = 4
    seconds: float = 300.0  # wall-time budget for one model; stops between epochs
    train_images: int = 10_000  # the first N images of the training split
    batch_size: int = 128
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9)
    lr: float = 1e-3
    seed: int = 0
    gap: float = 0.25  # submitted - retrained accuracy above this needs review


@dataclass(frozen=True)
class AssignmentConfig:
    """Everything the grader needs to know about one assignment, validated on load."""

    name: str
    language: str = DEFAULT_LANGUAGE  # what its students read (feedback, messages)
    limits: TimeBudgets = field(default_factory=TimeBudgets)  # the [limits] table
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    questions: Mapping[str, QuestionRules] = field(default_factory=dict)
    accuracy: tuple[AccuracyQuestion, ...] = ()
    comparison: tuple[ComparisonQuestion, ...] = ()
    evaluation: Evaluation = field(default_factory=Evaluation)
    retrain: Retrain = field(default_factory=Retrain)
    artifacts: tuple[str, ...] = ()

    def rules_for(self, question: str) -> QuestionRules:
        """The rules of ``question`` (defaults when the config says nothing about it)."""
        return self.questions.get(question, QuestionRules())

    def graded_names(self, question: str) -> tuple[str, ...]:
        """The notebook names ``question`` grades (its own name unless configured)."""
        return self.rules_for(question).graded_names or (question,)

    @property
    def records_calls(self) -> bool:
        """True when any question needs the worker's record of what graded calls ran."""
        return any(rules.records_calls for rules in self.questions.values())


@dataclass(frozen=True)
class Assignment:
    """Where one assignment's files live, and its configuration."""

    name: str
    source_dir: Path
    student_dir: Path
    config: AssignmentConfig
    # A packaged copy (bundle.toml): the question order, since there is no master notebook,
    # and whether its tests include the hidden ones (a student kit's do not).
    question_names: tuple[str, ...] | None = None
    has_hidden_tests: bool = True

    @property
    def master_notebook(self) -> Path:
        """The instructor's master notebook (otter-assign format)."""
        return self.source_dir / f"{self.name}.ipynb"

    @property
    def student_notebook(self) -> Path:
        """The generated student notebook."""
        return self.student_dir / f"{self.name}.ipynb"

    @property
    def tests_dir(self) -> Path:
        """The generated grader-side test files (public and hidden)."""
        return self.source_dir / "tests"

    @property
    def probes_file(self) -> Path | None:
        """The assignment's probes module, if it has one."""
        path = self.source_dir / PROBES_FILE
        return path if path.is_file() else None

    @property
    def fixtures_file(self) -> Path | None:
        """The assignment's fixtures module (helpers its tests hand to student code), if any."""
        path = self.source_dir / FIXTURES_FILE
        return path if path.is_file() else None


def _take(table: Mapping[str, Any], allowed: set[str], where: str) -> dict[str, Any]:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return dict(table)


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    names = set(cls.__dataclass_fields__)
    values = _take(table, names, where)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_config(name: str, raw: Mapping[str, Any], where: str) -> AssignmentConfig:
    """Validate a parsed ``assignment.toml`` table into an :class:`AssignmentConfig`."""
    raw = _take(
        raw,
        {"language", "limits", "sandbox", "questions", "accuracy", "comparison", "evaluation",
         "retrain", "artifacts"},
        where,
    )
    budgets = _build(TimeBudgets, raw.get("limits", {}), f"{where} [limits]")
    sandbox = _build(SandboxConfig, raw.get("sandbox", {}), f"{where} [sandbox]")
    questions = {
        q: _build(QuestionRules, rules, f"{where} [questions.{q}]")
        for q, rules in raw.get("questions", {}).items()
    }
    accuracy = tuple(
        _build(AccuracyQuestion, entry, f"{where} [[accuracy]] #{i + 1}")
        for i, entry in enumerate(raw.get("accuracy", []))
    )
    comparison = tuple(
        _build(ComparisonQuestion, entry, f"{where} [[comparison]] #{i + 1}")
        for i, entry in enumerate(raw.get("comparison", []))
    )
    evaluation = _build(Evaluation, raw.get("evaluation", {}), f"{where} [evaluation]")
    retrain = _build(Retrain, raw.get("retrain", {}), f"{where} [retrain]")
    artifacts_table = _take(raw.get("artifacts", {}), {"files"}, f"{where} [artifacts]")
    language = raw.get("language", DEFAULT_LANGUAGE)
    if language not in LANGUAGES:
        raise ConfigError(f"{where}: language = {language!r}: the catalogue has "
                          f"{', '.join(LANGUAGES)} (what students read is written in it)")
    config = AssignmentConfig(
        name=name,
        language=language,
        limits=budgets,
        sandbox=sandbox,
        questions=questions,
        accuracy=accuracy,
        comparison=comparison,
        evaluation=evaluation,
        retrain=retrain,
        artifacts=tuple(artifacts_table.get("files", ())),
    )
    _check_consistency(config, where)
    return config


def _check_consistency(config: AssignmentConfig, where: str) -> None:
    for entry in config.accuracy:
        for dataset in DATASETS:
            if not entry.zero_at[dataset] < entry.full_at[dataset]:
                raise ConfigError(
                    f"{where}: accuracy question {entry.question!r} needs zero_at < full_at "
                    f"on {dataset}"
                )
    accuracy_names = {entry.question for entry in config.accuracy}
    for entry in config.comparison:
        for ref in (entry.better, entry.worse):
            if ref not in accuracy_names:
                raise ConfigError(
                    f"{where}: comparison {entry.question!r} refers to {ref!r}, "
                    f"which is not an [[accuracy]] question"
                )
    for question, rules in config.questions.items():
        if rules.structure is not None and rules.structure not in STRUCTURES:
            raise ConfigError(
                f"{where} [questions.{question}]: structure must be one of "
                f"{', '.join(STRUCTURES)}, not {rules.structure!r}"
            )
        for key in ("allowed_routines", "graded_names"):
            if not all(isinstance(v, str) and v for v in getattr(rules, key)):
                raise ConfigError(f"{where} [questions.{question}]: {key} must be names")
    packages = config.sandbox.packages
    if packages is not None and not all(isinstance(p, str) and p for p in packages):
        raise ConfigError(f"{where} [sandbox]: packages must be a list of distribution names")
    for key, value in vars(config.evaluation).items():
        if type(value) in (bool, tuple):
            continue
        if not (isinstance(value, int | float) and value >= 0):
            raise ConfigError(f"{where} [evaluation]: {key} must be a number >= 0")
    if config.retrain.optimizer not in ("adam", "sgd"):
        raise ConfigError(f"{where} [retrain]: optimizer must be adam or sgd")
    for limit_name, value in vars(config.limits).items():
        if not (isinstance(value, int | float) and value > 0):
            raise ConfigError(f"{where} [limits]: {limit_name} must be a positive number")


def _read_bundle(path: Path, name: str) -> tuple[tuple[str, ...], bool]:
    """A packaged assignment's question order and whether it holds hidden tests."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    raw = _take(raw, {"assignment", "tests", "questions"}, str(path))
    questions = raw.get("questions")
    if raw.get("assignment") != name or raw.get("tests") not in ("public", "all"):
        raise ConfigError(f"{path}: needs assignment = {name!r} and tests = 'public' or 'all'")
    if not isinstance(questions, list) or not all(isinstance(q, str) and q for q in questions):
        raise ConfigError(f"{path}: questions must be a list of question names")
    return tuple(questions), raw["tests"] == "all"


def load_assignment(name: str, root: Path = PROJECT_ROOT) -> Assignment:
    """Load one assignment by name; raises :class:`ConfigError` with what to fix.

    Without a master notebook under solutions/, a packaged copy under bundle/ is loaded.
    """
    source_dir = root / "solutions" / name
    master = source_dir / f"{name}.ipynb"
    bundle = root / BUNDLE_DIR / name / BUNDLE_FILE
    packaged: tuple[tuple[str, ...], bool] | None = None
    if not master.is_file() and bundle.is_file():
        source_dir, packaged = bundle.parent, _read_bundle(bundle, name)
    elif not master.is_file():
        known = ", ".join(discover(root)) or "none"
        raise ConfigError(
            f"unknown assignment {name!r}: {master} does not exist (known assignments: {known})"
        )
    config_path = source_dir / CONFIG_FILE
    raw: dict[str, Any] = {}
    if config_path.is_file():
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    config = parse_config(name, raw, str(config_path))
    return Assignment(
        name=name,
        source_dir=source_dir,
        student_dir=root / "assignments" / name,
        config=config,
        question_names=packaged[0] if packaged else None,
        has_hidden_tests=packaged[1] if packaged else True,
    )


def discover(root: Path = PROJECT_ROOT) -> list[str]:
    """Names of all assignments (folders of solutions/ holding a same-named notebook), sorted."""
    solutions = root / "solutions"
    if not solutions.is_dir():
        return []
    return sorted(
        d.name for d in solutions.iterdir() if d.is_dir() and (d / f"{d.name}.ipynb").is_file()
    )


def tested_question_names(assignment: Assignment) -> list[str]:
    """Names of the test-graded questions, in the master notebook's order."""
    if assignment.question_names is not None:
        return list(assignment.question_names)
    import json

    import yaml

    data = json.loads(assignment.master_notebook.read_text(encoding="utf-8"))
    names = []
    for cell in data.get("cells", []):
        if cell.get("cell_type") != "raw":
            continue
        source = "".join(cell.get("source", []))
        lines = source.strip().splitlines()
        if not lines or lines[0].strip() != "# BEGIN QUESTION":
            continue
        config = yaml.safe_load("\n".join(lines[1:])) or {}
        if not isinstance(config, dict) or "name" not in config:
            raise ConfigError(f"{assignment.master_notebook}: a BEGIN QUESTION cell has no name")
        names.append(str(config["name"]))
    return names


def question_order(assignment: Assignment) -> list[str]:
    """Every question of the assignment in output order: tests first, then accuracy ones."""
    accuracy = [entry.question for entry in assignment.config.accuracy]
    comparison = [entry.question for entry in assignment.config.comparison]
    return tested_question_names(assignment) + accuracy + comparison
