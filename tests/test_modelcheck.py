"""What a saved model's file holds, read in the harness without unpickling it, and judged
against the layers its class declares (grading/weightsfile.py, grading/modelcheck.py).

In-process and fast: the honest example files and a lookup table of every public synthetic
image in each packing of examples/lookup_packings.py. The layers are described here by the
worker's own function (sandbox/models.py describe_layers) on models built in this process
from trusted sources (the master notebook's classes and the packings), never a submission.
The same cheats graded through the CLI are in tests/test_models.py and the catalogue.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from local_run import built
from torch import nn

from autograder.core.assignments import PROJECT_ROOT, AccuracyQuestion, Evaluation, load_assignment
from autograder.core.results import ModelFinding, ModelMeasurement
from autograder.grading import datasets
from autograder.grading.evaluation import accuracy_result, decision_text
from autograder.grading.modelcheck import (
    REASONS_TEXT,
    check_weights,
    layers_from_report,
    side_data,
)
from autograder.grading.submission import gradable_cells
from autograder.grading.weightsfile import UnreadableWeights, read_weights
from autograder.sandbox.models import describe_layers

sys.path.insert(0, str(PROJECT_ROOT / "examples"))
import lookup_packings  # noqa: E402

NAME = "03_convnet_cifar10"
CONFIG = load_assignment(NAME).config
SETTINGS = CONFIG.evaluation
REFERENCE = {entry.model: entry.reference_numbers for entry in CONFIG.accuracy}
EXAMPLES = PROJECT_ROOT / "examples" / "submissions"
# Packings whose table of the 14,000 synthetic images is small enough (lzma-compressed, in
# ordinary-looking numbers) to pass every structural check: the 60,000 real images do not
# (tests/test_real_cifar10.py, bench/memorisation.py); the secret set and --retrain decide.
BELOW_THE_SIZE_BOUNDS = {"compressed_28bit", "lossy_4bit_compressed_28bit"}
SIDE = {"notebook_literal", "side_file"}  # the table is beside the weights, not in them


@pytest.fixture(scope="module")
def notebook_namespace() -> dict:
    """The master notebook's FCNet and ConvNet (trusted), with what the packings use."""
    space = {"torch": torch, "nn": nn, "F": F, "CIFAR10_MEAN": SETTINGS.mean,
             "CIFAR10_STD": SETTINGS.std}
    for cell in gradable_cells(built(NAME).reference_notebook):
        if "class FCNet(" in cell.source or "class ConvNet(" in cell.source:
            exec(compile(cell.source, "<master>", "exec"), space)
    return space


def _findings(data: bytes, model: nn.Module, role: str) -> list:
    return check_weights(data, layers_from_report(describe_layers(model)),
                         SETTINGS.max_parameters, REFERENCE[role], SETTINGS.reference_ratio)


def test_reference_sizes_in_the_config_are_the_master_notebooks(notebook_namespace):
    for role, numbers in REFERENCE.items():
        model = notebook_namespace[role]()
        assert numbers == sum(v.numel() for v in model.state_dict().values()), role


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*/*.pt")),
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_honest_example_files_hold_nothing_but_their_layers(path, notebook_namespace):
    """Every committed weights file that loads into its class (the good models, the FC-only
    ConvNet) has no finding; the malicious pickle cannot be read as a state_dict."""
    data = path.read_bytes()
    if path.parent.name == "malicious_pickle" and path.name == "convnet.pt":
        with pytest.raises(UnreadableWeights):
            read_weights(data)
        return
    if path.parent.name in ("wrong_architecture", "over_cap_convnet", "lookup_cheat"):
        assert read_weights(data).problems == ()  # a plain state_dict, of another class
        return
    role = "FCNet" if path.name == "fcnet.pt" else "ConvNet"
    space = dict(notebook_namespace)
    if path.parent.name == "fc_only_convnet":
        notebook = json.loads(next(path.parent.glob("*.ipynb")).read_text(encoding="utf-8"))
        source = next("".join(c["source"]) for c in notebook["cells"]
                      if "class ConvNet(" in "".join(c["source"]))
        exec(compile(source, "<example>", "exec"), space)
    model = space[role]()
    model.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    assert _findings(data, model, role) == []


def test_a_model_saved_as_torch_does_by_default_has_no_finding(notebook_namespace):
    """model.state_dict() as is: an OrderedDict with _metadata, float32, BatchNorm counters."""
    for role in ("FCNet", "ConvNet"):
        model = notebook_namespace[role]()
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        assert _findings(buffer.getvalue(), model, role) == [], role
        channels_last = model.to(memory_format=torch.channels_last)
        buffer = io.BytesIO()
        torch.save(channels_last.state_dict(), buffer)
        assert _findings(buffer.getvalue(), channels_last, role) == [], role


@pytest.fixture(scope="module")
def public_synthetic() -> tuple[np.ndarray, np.ndarray]:
    """Every synthetic image the grader could show a model: train, test and secret set
    (all written by `grader.py data synthetic`, so all public to a student who has it)."""
    parts = [datasets.synthetic_images(datasets.TRAIN_PER_BATCH, datasets.SYNTHETIC_SEED + 10 + i)
             for i in range(1, 6)]
    parts.append(datasets.synthetic_images(datasets.TEST_SIZE, datasets.SYNTHETIC_SEED + 20))
    parts.append(datasets.synthetic_images(datasets.SECRET_SIZE, datasets.SYNTHETIC_SEED + 30))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.fixture(scope="module")
def packed(public_synthetic, notebook_namespace, tmp_path_factory) -> dict:
    """Each packing of the public synthetic table: built, loaded, described, checked."""
    images, labels = public_synthetic
    found = {}
    for packing in lookup_packings.packings(images, labels):
        model = lookup_packings.build(packing, notebook_namespace)
        folder = tmp_path_factory.mktemp(packing.name)
        lookup_packings.write_submission(packing, folder / "sub", EXAMPLES / NAME / "good")
        found[packing.name] = (packing, model, _findings(packing.weights(), model, "ConvNet"),
                               side_data(folder / "sub", ["fcnet.pt", "convnet.pt"],
                                         SETTINGS.side_bytes))
    return found


@pytest.mark.parametrize("name", sorted(lookup_packings.PACKERS))
def test_every_packing_of_the_public_table_is_a_working_lookup(name, packed, public_synthetic,
                                                               tmp_path, monkeypatch):
    """The cheats are real: each one answers every public image it is shown correctly."""
    images, labels = public_synthetic
    packing, model, _, _ = packed[name]
    monkeypatch.chdir(tmp_path)
    for file_name, data in packing.files.items():
        (tmp_path / file_name).write_bytes(data)
    model._cache = None
    chosen = np.random.default_rng(0).choice(len(labels), 200, replace=False)
    x = torch.from_numpy(images[chosen]).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(SETTINGS.mean).view(1, 3, 1, 1)) / torch.tensor(SETTINGS.std).view(
        1, 3, 1, 1)
    with torch.no_grad():
        assert (model(x.flip(-1)).argmax(1).numpy() == labels[chosen]).mean() == 1.0


@pytest.mark.parametrize("name", sorted(set(lookup_packings.PACKERS) - BELOW_THE_SIZE_BOUNDS))
def test_every_packing_of_the_public_table_is_flagged_with_its_evidence(name, packed):
    packing, _, findings, side = packed[name]
    if name in SIDE:
        assert findings == [], findings  # the weights are a plain small model...
        assert side is not None and side.kind == "side_data"  # ...the table is beside them
        assert "МБ" in side.seen
        return
    assert findings, f"{name}: no finding"
    assert all(f.kind in REASONS_TEXT and f.seen for f in findings)
    assert side is None


def test_the_issues_packing_is_flagged_for_what_it_is(packed):
    """The int64 buffer of issue 19: not a layer's tensor, an integer tensor; the evidence
    names the key, the dtype, the shape and the size."""
    _, _, findings, _ = packed["int64_buffer"]
    kinds = {f.kind: f.seen for f in findings}
    assert {"weights_integer", "weights_not_layers"} <= set(kinds)
    assert "`packed`" in kinds["weights_integer"] and "int64" in kinds["weights_integer"]
    assert "МБ" in kinds["weights_integer"]


@pytest.mark.parametrize("name", sorted(BELOW_THE_SIZE_BOUNDS))
def test_a_compressed_table_of_the_small_synthetic_set_is_below_the_structural_bounds(
        name, packed):
    """Stated, not hidden: lzma-compressed into ordinary floats, 14,000 synthetic images fit
    under every bound; the real set's 60,000 do not (test_real_cifar10.py)."""
    assert packed[name][2] == []


def _state_file(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open('/tmp/modelcheck_pwned', 'w').write('x')",))


def test_reading_a_malicious_file_runs_nothing(tmp_path):
    """A pickle that would run code, inside a torch.save zip or as a bare pickle, is
    refused by name; nothing is executed."""
    target = Path("/tmp/modelcheck_pwned")
    target.unlink(missing_ok=True)
    good = _state_file({"w": torch.zeros(3)})
    evil = pickle.dumps({"w": _RunsCode()}, protocol=2)
    archive = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(archive, "w") as dst:
        for info in src.infolist():
            data = evil if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info, data)
    for data in (archive.getvalue(), evil):
        with pytest.raises(UnreadableWeights):
            read_weights(data)
    assert not target.exists()
    found = check_weights(archive.getvalue(), None, 5_000_000)
    assert [f.kind for f in found] == ["weights_unreadable"]
    assert "exec" in found[0].seen  # named (protocol 2 spells it __builtin__.exec)


def test_the_legacy_format_is_unreadable_here():
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buffer, _use_new_zipfile_serialization=False)
    with pytest.raises(UnreadableWeights, match="zip"):
        read_weights(buffer.getvalue())


def test_data_hidden_in_the_zip_beside_the_tensors_is_reported():
    good = _state_file({"fc.weight": torch.zeros(4, 4)})
    archive = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(archive, "w") as dst:
        prefix = src.namelist()[0].split("/")[0]
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(f"{prefix}/data/99", b"\0" * 50_000)
    problems = read_weights(archive.getvalue()).problems
    assert any("data/99" in p for p in problems), problems
    padded = good + b"\0" * 30_000  # bytes after the archive (torch.load refuses them too)
    assert any("вне его записей" in p for p in read_weights(padded).problems)


def test_views_and_shared_storages_are_seen():
    big = torch.arange(1000.0)
    found = check_weights(_state_file({"fc.bias": big[:10], "fc.weight": big[10:30].view(2, 10)}),
                          None, 5_000_000)
    storage = [f for f in found if f.kind == "weights_storage"]
    assert storage and "1,000" in storage[0].seen


def test_a_table_in_the_notebook_or_beside_it_is_measured(tmp_path):
    (tmp_path / "nb.ipynb").write_bytes(b"x" * 1000)
    (tmp_path / "convnet.pt").write_bytes(b"x" * 5_000_000)  # checked by itself, not here
    assert side_data(tmp_path, ["convnet.pt"], 2_000_000) is None
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cache.bin").write_bytes(b"x" * 2_500_000)
    found = side_data(tmp_path, ["convnet.pt"], 2_000_000)
    assert found is not None and "data/cache.bin" in found.seen
    (tmp_path / "data" / "cache.bin").unlink()
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "pack").write_bytes(b"x" * 3_000_000)  # never reaches the worker
    assert side_data(tmp_path, ["convnet.pt"], 2_000_000) is None


ENTRY = AccuracyQuestion("convnet_accuracy", "ConvNet", "convnet.pt",
                         {"cifar10": 0.7, "synthetic": 0.9}, {"cifar10": 0.5, "synthetic": 0.6},
                         3, reference_numbers=815_472)


def _data():
    from autograder.grading.datasets import ImageSet
    from autograder.grading.evaluation import EvaluationData

    empty = ImageSet("t", np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.int64), Path("t"))
    return EvaluationData("cifar10", empty, None, SETTINGS.mean, SETTINGS.std)


@pytest.mark.parametrize(("measured", "says"), [
    (ModelMeasurement(1.0, None), "решит преподаватель"),
    (ModelMeasurement(1.0, 0.1), "закрытый набор подтверждает запоминание"),
    (ModelMeasurement(0.8, 0.78), "запоминания открытых картинок он не показал"),
    (ModelMeasurement(1.0, None, retrained_accuracy=None,
                      retrain_note="переобучение не удалось: x"),
     "переобучить модель вашим кодом не удалось"),
    (ModelMeasurement(1.0, None, retrained_accuracy=0.3, retrain_note="..."),
     "переобучение подтверждает"),
])
def test_what_decides_is_said(measured, says):
    assert says in decision_text(measured, Evaluation(), 0.25)


def test_structural_findings_flag_and_never_change_the_score():
    finding = ModelFinding("weights_integer", "`packed`: int64 (10,), 80 байт")
    plain = accuracy_result(ENTRY, ModelMeasurement(1.0, None), _data(), SETTINGS, False)
    flagged = accuracy_result(ENTRY, ModelMeasurement(1.0, None, findings=(finding,)), _data(),
                              SETTINGS, False)
    assert flagged.score == plain.score == 3
    assert [f.kind for f in flagged.review] == ["weights_integer"]
    assert "решит преподаватель" in flagged.review[0].reason
    assert flagged.review[0].seen == finding.seen
    case = next(c for c in flagged.cases if c.name == "weights_file")
    assert case.score == case.max_score == 0 and "weights_integer" in case.message
