"""The deployable bundle: the `state_dict`, a `torch.export` program and a model card.

Each artifact is reloaded from disk into a fresh object and must predict the test split
bit for bit as evaluate did, or the bundle is not published.
"""

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_workflow.checkpoint import load_model, state_dict_bytes
from pytorch_workflow.data import Features
from pytorch_workflow.errors import UserError
from pytorch_workflow.files import (
    TMP_SUFFIX,
    atomic_write_bytes,
    atomic_write_json,
    remove_leftovers,
    sha256_of_file,
)
from pytorch_workflow.model_builder import build_model

STATE_DICT_FILE = "model.pt"
PROGRAM_FILE = "model.pt2"
CARD_FILE = "model_card.json"


class ExportCheckError(UserError):
    """A reloaded artifact predicted differently from the evaluated model."""


@dataclass(frozen=True)
class ExportInputs:
    model_name: str
    task: str
    device: torch.device
    checkpoint: Path
    features: Features
    test_features: np.ndarray  # raw (not standardised) float32, shape (n, k)
    evaluated_outputs: np.ndarray  # what evaluate got from the model, float32, shape (n,)
    card: dict[str, Any]  # params, metrics and hashes of the inputs


class StandardizedModel(nn.Module):
    """The model behind the train split's standardisation, so the program takes raw features."""

    def __init__(self, model: nn.Module, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("feature_mean", torch.from_numpy(mean.copy()))
        self.register_buffer("feature_std", torch.from_numpy(std.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.feature_mean) / self.feature_std)


def deployable(model: nn.Module, features: Features) -> nn.Module:
    if features.mean is None or features.std is None:
        return model
    return StandardizedModel(model, features.mean, features.std)


def export_program(model: nn.Module, example: torch.Tensor) -> bytes:
    """`torch.export` the model with a dynamic batch size; the program needs no code of ours."""
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    # Each node records the source file's absolute path; drop it so the program's bytes
    # do not depend on where the repository is checked out.
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def export_bundle(inputs: ExportInputs, export_dir: Path) -> dict[str, Any]:
    """Write the bundle to a temporary folder, check it, then move it into `export_dir`."""
    in_features = len(inputs.features.names)
    model = load_model(build_model(inputs.model_name, in_features=in_features), inputs.checkpoint)
    model = model.to(inputs.device).eval()
    program_model = deployable(model, inputs.features).to(inputs.device).eval()
    # The program keeps its example input; a few rows suffice (the batch size is dynamic,
    # and at least two rows keep torch.export from specialising it to 1).
    example_rows = np.resize(
        inputs.test_features, (max(2, min(8, len(inputs.test_features))), in_features)
    )
    example = torch.from_numpy(np.ascontiguousarray(example_rows)).to(inputs.device)

    export_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(export_dir)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{export_dir.name}.", suffix=TMP_SUFFIX, dir=export_dir.parent)
    )
    staging.chmod(0o755)  # mkdtemp makes it private; the bundle is for sharing
    try:
        atomic_write_bytes(staging / STATE_DICT_FILE, state_dict_bytes(model.state_dict()))
        atomic_write_bytes(staging / PROGRAM_FILE, export_program(program_model, example))
        _check_reloaded(staging, inputs)
        card = dict(inputs.card)
        card.update(
            model=inputs.model_name,
            task=inputs.task,
            parameters={name: list(t.shape) for name, t in model.state_dict().items()},
            files={
                STATE_DICT_FILE: sha256_of_file(staging / STATE_DICT_FILE),
                PROGRAM_FILE: sha256_of_file(staging / PROGRAM_FILE),
            },
            torch_version=torch.__version__,
            device=str(inputs.device),
            input={
                "columns": list(inputs.features.names),
                "dtype": "float32",
                "shape": ["batch", in_features],
            },
            output="logit" if inputs.task == "binary_classification" else "value",
            standardization=None
            if inputs.features.mean is None
            else {
                "mean": inputs.features.mean.tolist(),
                "std": inputs.features.std.tolist(),
                "applied_by": f"{PROGRAM_FILE}; apply it yourself before {STATE_DICT_FILE}",
            },
        )
        atomic_write_json(staging / CARD_FILE, card)
        _replace_dir(staging, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return card


def load_program(path: Path) -> nn.Module:
    """`torch.export.load` a program after checking that loading it cannot run code.

    `torch.export.load` unpickles with `weights_only=False` any weight or constant that the
    archive's config marks as pickled, and unpickles custom objects outright. A program
    exported here stores plain tensors only, so any such entry means the file was tampered with.
    """
    if not path.exists():
        raise UserError(f"{path}: exported program not found; run `dvc repro`")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            configs = {
                name: json.loads(archive.read(name))
                for name in names
                if name.endswith(("_weights_config.json", "_constants_config.json"))
            }
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable torch.export program ({error})") from None
    unsafe = [name for name in names if name.endswith((".pkl", ".pickle"))]
    for name, config in configs.items():
        entries = config.get("config", {}) if isinstance(config, dict) else {}
        for entry_name, entry in entries.items():
            if not isinstance(entry, dict):
                unsafe.append(f"{name}:{entry_name}")
                continue
            pickled = entry.get("use_pickle") is not False
            # Constants other than tensors are custom objects, which are always unpickled.
            path_name = str(entry.get("path_name", ""))
            custom_object = "_constants_" in name and not path_name.startswith("tensor_")
            if pickled or custom_object:
                unsafe.append(f"{name}:{entry_name}")
    if not configs:
        unsafe.append("no weights config")
    if unsafe:
        raise UserError(
            f"{path}: refused to load: the program holds pickled objects that could run code "
            f"({', '.join(unsafe[:3])})"
        )
    try:
        return torch.export.load(path).module()
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a loadable torch.export program ({reason[:160]})") from None


def _check_reloaded(bundle: Path, inputs: ExportInputs) -> None:
    """Both artifacts, reloaded from disk, must give evaluate's outputs bit for bit."""
    expected = inputs.evaluated_outputs.reshape(-1)
    fresh = build_model(inputs.model_name, in_features=len(inputs.features.names))
    fresh.load_state_dict(torch.load(bundle / STATE_DICT_FILE, weights_only=True))
    fresh = fresh.to(inputs.device).eval()
    raw = torch.from_numpy(inputs.test_features).to(inputs.device)
    scaled = torch.from_numpy(inputs.features.scale(inputs.test_features)).to(inputs.device)
    program = load_program(bundle / PROGRAM_FILE)
    for name, reloaded, X in (
        ("state_dict", fresh, scaled),
        ("torch.export program", program, raw),
    ):
        with torch.inference_mode():
            predicted = reloaded(X).detach().cpu().numpy().reshape(-1)
        if predicted.dtype != expected.dtype or not np.array_equal(predicted, expected):
            mismatched = (
                int(np.sum(predicted != expected)) if predicted.shape == expected.shape else -1
            )
            raise ExportCheckError(
                f"export check failed: the reloaded {name} predicts differently from evaluate "
                f"on {mismatched if mismatched >= 0 else 'all'} of {expected.size} test rows"
            )


def _replace_dir(staging: Path, target: Path) -> None:
    """Swap the finished bundle into place; an old bundle is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.old.", suffix=TMP_SUFFIX, dir=target.parent)
        )
        old.rmdir()
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old)


def read_card(export_dir: Path) -> dict[str, Any]:
    path = export_dir / CARD_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: model card not found; run `dvc repro` to export") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable model card ({error})") from None
