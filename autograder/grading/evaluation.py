"""Accuracy of saved models, measured by the harness: images stream out, logits come back.

For each ``[[accuracy]]`` question the harness reads the submitted weights file as bytes
(never unpickling it), checks its size, and asks the worker's trusted ``models`` module to
build the student's class and load the bytes with ``weights_only=True`` under the parameter
cap. The test images then go to the worker in batches, each with a secret, label-preserving
perturbation drawn per run (small shifts, flips, noise); the labels never leave this process.
Accuracy, partial credit, the secret-set gap and the comparison are all computed here.

Before the worker sees the file, :mod:`.weightsfile` reads its structure (never unpickling
it) and :mod:`.modelcheck` compares it with the layers the class declares and with the
reference architecture: tensors a plain model of that architecture would not hold (a lookup
table of public images has to live somewhere) are flagged for review with the evidence, and
the feedback says what decides (the secret set, ``--retrain``, or a person).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.assignments import AccuracyQuestion, ComparisonQuestion, Evaluation, Retrain
from ..core.catalogue import _
from ..core.errors import Outcome, SubmissionFailure
from ..core.results import (
    CaseResult,
    EvaluationRecord,
    ModelFinding,
    ModelMeasurement,
    QuestionResult,
    ReviewFlag,
)
from . import imagesets
from .datasets import DatasetError, ImageSet
from .judging import STRUCTURE_CHECK_NAME
from .modelcheck import REASONS_TEXT, check_weights, layers_from_report
from .remote import RemoteCaller, RemoteName, RemoteObject
from .weightsfile import UnreadableWeights, WeightsFile, read_weights

ACCURACY_CASE, SECRET_CASE, COMPARISON_CASE = "accuracy", "secret_set", "comparison"
RETRAIN_CASE, TRAIN_CASE, WEIGHTS_CASE = "retrained", "training_images", "weights_file"


@dataclass(frozen=True)
class EvaluationData:
    """What models are graded on: one dataset's test set, maybe a secret one, normalisation."""

    dataset: str  # "cifar10" or "synthetic": which thresholds apply
    official: ImageSet
    secret: ImageSet | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: ImageSet | None = None  # the training split: the memorisation check, --retrain

    def record(self, device: str, models: Mapping[str, ModelMeasurement]) -> EvaluationRecord:
        """For results.json: which data (name, kind, size, digest of each set), where the
        models ran and what each measured."""
        return EvaluationRecord(
            self.dataset, self.official.record(),
            None if self.secret is None else self.secret.record(),
            None if self.train is None else self.train.record(),
            device, dict(models),
        )


@dataclass(frozen=True)
class ModelGrading:
    """What describes the saved models of an assignment to grade: its accuracy and
    comparison questions, the data and settings they are measured with, and the retraining
    budget (None: no retraining)."""

    accuracy: Sequence[AccuracyQuestion]
    comparison: Sequence[ComparisonQuestion]
    data: EvaluationData
    settings: Evaluation
    budget: Retrain | None = None


@dataclass(frozen=True)
class GradedModels:
    """The accuracy and comparison questions of one submission, scored, and what each model
    measured (by accuracy question)."""

    questions: tuple[QuestionResult, ...]
    measured: Mapping[str, ModelMeasurement]


SAFE_TORCH = (2, 10)  # torch.load(weights_only=True) escapes: CVE-2025-32434, CVE-2026-24747


def unsafe_torch(version: str) -> str | None:
    """Why torch ``version`` must not open submitted weights files, or None."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) >= SAFE_TORCH:
        return None
    return (f"torch {version} is installed, but saved models are opened with "
            "torch.load(weights_only=True), which has known escapes before torch "
            f"{SAFE_TORCH[0]}.{SAFE_TORCH[1]} (CVE-2025-32434, CVE-2026-24747): install "
            "torch>=2.10 (pip install -e . does) before grading saved models")


def load_data(choice: str, data_dir: Path, secret: Path | None, settings: Evaluation,
              with_train: bool = False, test_set: Path | None = None) -> EvaluationData:
    """The sets to grade models on (picked, read and checked by :mod:`.imagesets`, see
    :func:`.imagesets.grading_sets`) with the assignment's normalisation; DatasetError
    (naming the path) when missing or not a readable image set, or when the installed torch
    cannot open submitted weights safely."""
    import torch

    problem = unsafe_torch(torch.__version__)
    if problem is not None:
        raise DatasetError(problem)
    sets = imagesets.grading_sets(choice, data_dir, secret, with_train, test_set)
    return EvaluationData(sets.kind, sets.official, sets.secret, settings.mean, settings.std,
                          sets.train)


def perturb(images: np.ndarray, rng: np.random.Generator, settings: Evaluation) -> np.ndarray:
    """A label-preserving perturbation per image: shift (edge pixels repeated), flip, noise
    (Gaussian, ``noise_levels`` grey levels, rounded; drawn in float32: half the time of
    float64 on the harness's side of a batch)."""
    out = images.copy()
    n = len(images)
    if settings.shift_pixels > 0:
        k = settings.shift_pixels
        padded = np.pad(images, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
        dy, dx = rng.integers(-k, k + 1, (2, n))
        for i in range(n):
            out[i] = padded[i, k + dy[i]:k + dy[i] + 32, k + dx[i]:k + dx[i] + 32]
    if settings.flip:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip][:, :, ::-1]
    if settings.noise_levels > 0:
        noisy = out.astype(np.float32)
        noise = rng.standard_normal(out.shape, dtype=np.float32)
        noise *= np.float32(settings.noise_levels)
        noisy += noise
        np.rint(noisy, out=noisy)
        np.clip(noisy, 0, 255, out=noisy)
        out = noisy.astype(np.uint8)
    return out


def _accuracy(caller: RemoteCaller, model: RemoteObject, images: ImageSet, data: EvaluationData,
              settings: Evaluation, rng: np.random.Generator, device: str) -> float:
    """The model's accuracy on ``images``, perturbed batch by batch. The next batch is
    perturbed on a helper thread while the worker computes this one's logits (the rng is
    used by that thread alone, in batch order, so a seed still gives the same images)."""
    import torch

    size, count = settings.batch_size, len(images.labels)
    correct = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="perturb") as helper:
        pending = helper.submit(perturb, images.images[:size], rng, settings)
        for start in range(0, count, size):
            batch = pending.result()
            if start + size < count:
                pending = helper.submit(perturb, images.images[start + size:start + 2 * size],
                                        rng, settings)
            logits = caller.probe(
                "logits", (model, torch.from_numpy(batch), list(data.mean), list(data.std),
                           device), {}, module="models",
            )
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(batch), 10):
                raise SubmissionFailure(_("the model did not return logits of shape (N, 10)"))
            predicted = logits.argmax(dim=1).numpy()
            correct += int((predicted == images.labels[start:start + len(batch)]).sum())
    return correct / count


def _weights_bytes(files_dir: Path | None, entry: AccuracyQuestion, settings: Evaluation
                   ) -> bytes:
    """The submitted file, its size checked before anything reads it."""
    path = None if files_dir is None else files_dir / entry.weights
    if path is None or not path.is_file() or path.is_symlink():
        raise SubmissionFailure(_(
            "there is no file {weights}: save the weights with "
            "torch.save(model.state_dict(), {weights_literal}) and submit the file together "
            "with the notebook (as a folder or a .zip)"
        ).format(weights=entry.weights, weights_literal=repr(entry.weights)))
    size = path.stat().st_size
    if size > settings.max_weights_bytes:
        raise SubmissionFailure(_(
            "{weights} takes {size:.1f} MB, but at most {limit:.1f} MB is allowed (parameters "
            "and buffers together): a model cannot carry data inside it"
        ).format(weights=entry.weights, size=size / 1e6, limit=settings.max_weights_bytes / 1e6))
    return path.read_bytes()


def measure(caller: RemoteCaller, entry: AccuracyQuestion, files_dir: Path | None,
            data: EvaluationData, settings: Evaluation, seed: int, device: str,
            budget: Retrain | None = None, threads: int = 1) -> ModelMeasurement:
    """Load one submitted model in the worker and measure it on the official and secret sets
    (and, with a ``budget``, retrain the class with the student's code and measure that)."""
    try:
        weights = _weights_bytes(files_dir, entry, settings)
        structure = read_structure(weights)  # parsed once, here, before the worker loads it
        model_class = RemoteName(caller, entry.model, "class")
        loaded = caller.probe(
            "load_model", (model_class, weights, entry.weights, settings.max_parameters, device,
                           settings.gpu_memory_fraction, threads),
            {}, module="models",
        )
        model = loaded["model"] if isinstance(loaded, dict) else None
        if not isinstance(model, RemoteObject):
            raise SubmissionFailure(_("the model could not be built"))
        layers = layers_from_report(loaded.get("layers"))
        findings = tuple(check_weights(
            structure, layers, settings.max_parameters, entry.reference_numbers,
            settings.reference_ratio))
        rng = np.random.default_rng([seed, 17])
        accuracy = _accuracy(caller, model, data.official, data, settings, rng, device)
        secret = None
        if data.secret is not None:
            secret = _accuracy(caller, model, data.secret, data, settings, rng, device)
        sample = train_sample(data, settings, seed)
        on_train = None if sample is None else _accuracy(caller, model, sample, data,
                                                         settings, rng, device)
    except SubmissionFailure as exc:
        return ModelMeasurement(None, None, exc.message)
    if budget is None:
        return ModelMeasurement(accuracy, secret, train_accuracy=on_train, findings=findings)
    again, note = retrained(caller, entry, data, settings, budget, seed, device, threads)
    return ModelMeasurement(accuracy, secret, retrained_accuracy=again, retrain_note=note,
                            train_accuracy=on_train, findings=findings)


def read_structure(weights: bytes) -> WeightsFile | str:
    """The weights file's structure (read as data), or why it cannot be read that way."""
    try:
        return read_weights(weights)
    except UnreadableWeights as exc:
        return str(exc)


def train_sample(data: EvaluationData, settings: Evaluation, seed: int) -> ImageSet | None:
    """``settings.train_sample`` training images drawn with the run's secret seed: a model
    that learnt the training set is at least about as accurate on them as on the test set; one
    that memorised the test set is not (None where there is no training split)."""
    if data.train is None or settings.train_sample <= 0:
        return None
    pool = data.train
    count = min(settings.train_sample, len(pool.labels))
    chosen = np.sort(np.random.default_rng([seed, 29]).choice(len(pool.labels), count,
                                                              replace=False))
    return ImageSet(f"{pool.name}, {count} drawn", pool.images[chosen], pool.labels[chosen],
                    pool.source, pool.kind, pool.digest)


def _perturbation_text(settings: Evaluation) -> str:
    parts = []
    if settings.shift_pixels:
        parts.append(_("shifts of up to {pixels} px").format(pixels=settings.shift_pixels))
    if settings.flip:
        parts.append(_("flips"))
    if settings.noise_levels:
        parts.append(_("slight noise"))
    return _(", with random {perturbations}").format(perturbations=", ".join(parts)) \
        if parts else ""


def _stage(caller: RemoteCaller, train: ImageSet, count: int) -> None:
    """Send the first ``count`` training images and labels to the worker, in chunks."""
    import torch

    chunk = 5000
    for start in range(0, min(count, len(train.labels)), chunk):
        stop = min(start + chunk, count)
        caller.probe("stage_training_data",
                     (torch.from_numpy(train.images[start:stop]),
                      torch.from_numpy(train.labels[start:stop]), start == 0),
                     {}, module="models")


def retrained(caller: RemoteCaller, entry: AccuracyQuestion, data: EvaluationData,
              settings: Evaluation, budget: Retrain, seed: int, device: str, threads: int = 1
              ) -> tuple[float | None, str]:
    """The student's class trained by the student's own training function, measured after
    every epoch within the budget; the best of those accuracies counts (a training run that
    wobbles late is not held against an honest model: this number only decides a flag)."""
    if data.train is None:
        return None, ""
    import time

    try:
        _stage(caller, data.train, budget.train_images)
        plan = {"seed": budget.seed, "batch_size": budget.batch_size,
                "optimizer": budget.optimizer, "lr": budget.lr}
        out = caller.probe(
            "retrain_begin", (RemoteName(caller, entry.model, "class"),
                              RemoteName(caller, budget.function, "function"), plan,
                              list(data.mean), list(data.std), device, threads),
            {}, module="models")
        model = out["model"] if isinstance(out, dict) else None
        if not isinstance(model, RemoteObject):
            raise SubmissionFailure(_("the retrained model could not be obtained"))
        started, epochs, accuracies = time.monotonic(), 0, []
        while epochs < budget.epochs and time.monotonic() - started < budget.seconds:
            left = budget.seconds - (time.monotonic() - started)
            caller.probe("retrain_epoch", (), {}, module="models", timeout_s=left * 1.5 + 60)
            epochs += 1
            rng = np.random.default_rng([seed, 23])  # the same perturbation every epoch
            accuracies.append(_accuracy(caller, model, data.official, data, settings, rng,
                                        device))
    except SubmissionFailure as exc:
        return None, _("retraining failed: {error}").format(error=exc.message)
    accuracy = max(accuracies)
    note = _("{model}, retrained by your {function} ({epochs} epochs, {seconds:.1f} s, "
             "{images} images; best epoch {best}): {accuracy:.2%}").format(
        model=entry.model, function=budget.function, epochs=epochs,
        seconds=time.monotonic() - started, images=budget.train_images,
        best=accuracies.index(accuracy) + 1, accuracy=accuracy)
    return accuracy, note


def credit(accuracy: float, full_at: float, zero_at: float) -> float:
    """Fraction of the points: 0 at or below ``zero_at``, 1 at or above ``full_at``, linear."""
    return float(min(1.0, max(0.0, (accuracy - zero_at) / (full_at - zero_at))))


def _structure_failed(tested: Mapping[str, QuestionResult], model: str) -> bool:
    question = tested.get(model)
    return question is not None and any(
        case.name == STRUCTURE_CHECK_NAME and case.outcome is not Outcome.PASSED
        for case in question.cases
    )


def decision_text(measured: ModelMeasurement, settings: Evaluation, retrain_gap: float,
                with_retrain: bool = True) -> str:
    """What decides whether a model whose files look like a table memorised public images:
    the secret set (images no public table holds, where the instructor has them), the
    retraining with the student's own code, or, with neither, a person (student-facing)."""
    acc, parts = measured.accuracy or 0.0, []
    if measured.secret_accuracy is not None:
        secret = measured.secret_accuracy
        parts.append(
            _("the secret set confirms memorisation ({public:.2%} on the public set vs. "
              "{secret:.2%} on the secret one)").format(public=acc, secret=secret)
            if acc - secret > settings.secret_gap else
            _("on the secret set {secret:.2%} vs. {public:.2%} on the public one: it showed no "
              "memorisation of the public images").format(public=acc, secret=secret))
    if with_retrain and measured.retrain_note:
        again = measured.retrained_accuracy
        parts.append(
            _("the model could not be retrained with your code") if again is None else
            _("retraining confirms it: the model retrained with your code gets {retrained:.2%} "
              "vs. {submitted:.2%}").format(retrained=again, submitted=acc)
            if acc - again > retrain_gap else
            _("the model retrained with your code gets {retrained:.2%} vs. "
              "{submitted:.2%}").format(retrained=again, submitted=acc))
    if not parts:
        return _("the teacher will decide: this check had neither a secret set nor retraining "
                 "(grade --secret-set, --retrain)")
    return _("what decides: {evidence}").format(evidence="; ".join(parts))


def _structure_flags(entry: AccuracyQuestion, measured: ModelMeasurement, settings: Evaluation,
                     retrain_gap: float, side: ModelFinding | None
                     ) -> tuple[list[ReviewFlag], CaseResult | None]:
    """A review flag per kind of finding in the weights file (and for data brought beside
    it), each saying what decides; a case listing them. None of it changes the score."""
    found = [(f.kind, f.seen) for f in measured.findings]
    flags = [ReviewFlag(entry.question, kind, f"{_(REASONS_TEXT[kind])}; "
                        f"{decision_text(measured, settings, retrain_gap)}", seen=seen[:800])
             for kind, seen in found]
    if side is not None:  # a table read from the notebook or a file: a retrained class reads
        flags.append(ReviewFlag(  # it too, so only the secret set decides
            entry.question, side.kind, f"{_(REASONS_TEXT[side.kind])}; "
            f"{decision_text(measured, settings, retrain_gap, with_retrain=False)}",
            seen=side.seen[:800]))
        found.append((side.kind, side.seen))
    if not found:
        return flags, None
    kinds = ", ".join(dict.fromkeys(kind for kind, _seen in found))
    case = CaseResult(entry.question, WEIGHTS_CASE, False, 0.0, 0.0, Outcome.FAILED,
                      _("the weights file and the data beside it: {kinds} (details in the "
                        "\"needs a teacher's review\" marks); {decision}").format(
                          kinds=kinds, decision=decision_text(measured, settings, retrain_gap)))
    return flags, case


def accuracy_result(entry: AccuracyQuestion, measured: ModelMeasurement, data: EvaluationData,
                    settings: Evaluation, structure_failed: bool,
                    retrain_gap: float = 1.0, side: ModelFinding | None = None) -> QuestionResult:
    """Score one accuracy question from what the harness measured (``side``: data the
    submission brings beside its weights files, flagged on this question)."""
    full, zero = entry.full_at[data.dataset], entry.zero_at[data.dataset]
    if measured.accuracy is None:
        case = CaseResult(entry.question, ACCURACY_CASE, False, entry.points, 0.0,
                          Outcome.ERROR, measured.error)
        side_flags, _case = _structure_flags(entry, measured, settings, retrain_gap, side)
        return QuestionResult(entry.question, entry.points, 0.0, (case,), (),
                              tuple(side_flags))
    acc = measured.accuracy
    score = 0.0 if structure_failed else round(entry.points * credit(acc, full, zero), 4)
    message = _(
        "accuracy of {model} on the test set ({name}, {count} images{perturbation}): "
        "{accuracy:.2%}; full points from {full:.0%}, zero at {zero:.0%} and below"
    ).format(model=entry.model, name=data.official.name, count=len(data.official.labels),
             perturbation=_perturbation_text(settings), accuracy=acc, full=full, zero=zero)
    notes: tuple[str, ...] = ()
    if structure_failed:
        notes = (_("{model} did not pass the check of the network's structure, so its "
                   "accuracy does not count").format(model=entry.model),)
    outcome = Outcome.PASSED if score >= entry.points else Outcome.FAILED
    cases = [CaseResult(entry.question, ACCURACY_CASE, False, entry.points, score, outcome,
                        message)]
    flags: list[ReviewFlag] = []
    if measured.secret_accuracy is not None:
        gap = acc - measured.secret_accuracy
        cases.append(CaseResult(
            entry.question, SECRET_CASE, False, 0.0, 0.0,
            Outcome.PASSED if gap <= settings.secret_gap else Outcome.FAILED,
            _("on the second, secret set: {accuracy:.2%}").format(
                accuracy=measured.secret_accuracy),
        ))
        if gap > settings.secret_gap:
            flags.append(ReviewFlag(
                entry.question, "secret_set_gap",
                _("the accuracy on the secret set is noticeably lower than on the public one: "
                  "the model may have memorised the public test set"),
                seen=_("{first:.2%} vs. {second:.2%} (a difference of {allowed:.0%} is "
                       "allowed)").format(first=acc, second=measured.secret_accuracy,
                                          allowed=settings.secret_gap),
            ))
    if measured.train_accuracy is not None:
        cases.append(_train_case(entry, acc, measured.train_accuracy, settings))
        if acc - measured.train_accuracy > settings.train_gap:
            flags.append(ReviewFlag(
                entry.question, "train_set_gap",
                _("the model is noticeably more accurate on the test set than on images from "
                  "the training set: this happens when a model has memorised the test set "
                  "instead of learning the task"),
                seen=_("{test:.2%} on the test set vs. {train:.2%} on the training images (a "
                       "difference of {allowed:.0%} is allowed)").format(
                    test=acc, train=measured.train_accuracy, allowed=settings.train_gap),
            ))
    if measured.retrain_note:
        cases.append(_retrain_case(entry, measured))
        gap = None if measured.retrained_accuracy is None else acc - measured.retrained_accuracy
        if gap is None:
            flags.append(ReviewFlag(
                entry.question, "retrain_failed",
                _("the submitted model works, but it could not be retrained with your own "
                  "code: the weights may not have come from this code"),
                seen=measured.retrain_note[:300],
            ))
        elif gap > retrain_gap:
            flags.append(ReviewFlag(
                entry.question, "retrain_gap",
                _("the model retrained with your own code is noticeably worse than the "
                  "submitted one: the weights may not have come from this code"),
                seen=_("{first:.2%} vs. {second:.2%} (a difference of {allowed:.0%} is "
                       "allowed)").format(first=acc, second=measured.retrained_accuracy,
                                          allowed=retrain_gap),
            ))
    more_flags, weights_case = _structure_flags(entry, measured, settings, retrain_gap, side)
    flags += more_flags
    if weights_case is not None:
        cases.append(weights_case)
    return QuestionResult(entry.question, entry.points, score, tuple(cases), notes, tuple(flags))


def _train_case(entry: AccuracyQuestion, test: float, train: float,
                settings: Evaluation) -> CaseResult:
    passed = test - train <= settings.train_gap
    return CaseResult(entry.question, TRAIN_CASE, False, 0.0, 0.0,
                      Outcome.PASSED if passed else Outcome.FAILED,
                      _("on {count} images from the training set: {accuracy:.2%}").format(
                          count=settings.train_sample, accuracy=train))


def _retrain_case(entry: AccuracyQuestion, measured: ModelMeasurement) -> CaseResult:
    outcome = Outcome.PASSED if measured.retrained_accuracy is not None else Outcome.ERROR
    return CaseResult(entry.question, RETRAIN_CASE, False, 0.0, 0.0, outcome,
                      measured.retrain_note)


def comparison_result(entry: ComparisonQuestion, accuracies: Mapping[str, ModelMeasurement],
                      scored: Mapping[str, QuestionResult], dataset: str) -> QuestionResult:
    """The better model must beat the worse one by the margin, both measured and sound."""
    better, worse = accuracies.get(entry.better), accuracies.get(entry.worse)
    margin = entry.margin[dataset]
    voided = [name for name in (entry.better, entry.worse) if scored[name].notes]
    if better is None or worse is None or better.accuracy is None or worse.accuracy is None:
        outcome, score = Outcome.SKIPPED, 0.0
        message = _("no comparison is possible: the accuracy of one of the models was not "
                    "measured")
    elif voided:
        outcome, score = Outcome.FAILED, 0.0
        message = _("the comparison does not count: {models} did not count").format(
            models=", ".join(voided))
    else:
        diff = better.accuracy - worse.accuracy
        passed = diff >= margin
        outcome, score = (Outcome.PASSED, entry.points) if passed else (Outcome.FAILED, 0.0)
        message = _("difference in accuracy {difference:+.2%}, at least {margin:+.0%} needed "
                    "({better:.2%} vs. {worse:.2%})").format(
            difference=diff, margin=margin, better=better.accuracy, worse=worse.accuracy)
    case = CaseResult(entry.question, COMPARISON_CASE, False, entry.points, score, outcome,
                      message)
    return QuestionResult(entry.question, entry.points, score, (case,))


def grade_models(caller: RemoteCaller, models: ModelGrading, *,
                 tested: Mapping[str, QuestionResult], files_dir: Path | None, seed: int,
                 device: str, threads: int = 1, side: ModelFinding | None = None
                 ) -> GradedModels:
    """Every accuracy and comparison question of one submission, in config order (``tested``:
    the test-graded questions, whose structure checks void a model; ``side``: what
    :func:`.modelcheck.side_data` found beside the weights, flagged on the first)."""
    data, settings, budget = models.data, models.settings, models.budget
    measured = {
        entry.question: measure(caller, entry, files_dir, data, settings, seed, device, budget,
                                threads)
        for entry in models.accuracy
    }
    gap = budget.gap if budget is not None else 1.0
    results = [
        accuracy_result(entry, measured[entry.question], data, settings,
                        _structure_failed(tested, entry.model), gap,
                        side if index == 0 else None)
        for index, entry in enumerate(models.accuracy)
    ]
    scored = {r.name: r for r in results}
    results += [comparison_result(entry, measured, scored, data.dataset)
                for entry in models.comparison]
    return GradedModels(tuple(results), measured)
