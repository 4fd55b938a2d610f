"""The deployable bundle: the `state_dict`, a `torch.export` program and a model card.

`model.pt` and the card are all `predict` needs: it rebuilds the model from them and runs no code
from any file. `model.pt2` is for running the model without this repository (the program
standardises its input itself); a program file is code, so `predict` runs it only when told to
trust it. Both artifacts are reloaded from disk into fresh objects and must predict the test
split bit for bit as evaluate did, or the bundle is not published.
"""

import io
import json
import math
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_workflow.data_setup import Features, SplitTable, class_name
from pytorch_workflow.errors import UserError, first_line
from pytorch_workflow.files import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    sha256_of_file,
)
from pytorch_workflow.model_builder import (
    build_model,
    constructor_options,
    model_class,
    model_classes,
)
from pytorch_workflow.model_code import model_source
from pytorch_workflow.params import (
    CLASSIFICATION,
    MULTICLASS,
    REGRESSION,
    TASKS,
    ModelParams,
)
from pytorch_workflow.tables import ParquetTable
from pytorch_workflow.utils import (
    check_archive_size,
    load_model,
    portable_serialization_id,
    state_dict_bytes,
)

STATE_DICT_FILE = "model.pt"
PROGRAM_FILE = "model.pt2"
CARD_FILE = "model_card.json"
MAX_CARD_BYTES = 1024 * 1024
# What the model gives for each row, by task: the card's `output`.
OUTPUT_KINDS = {CLASSIFICATION: "logit", MULTICLASS: "logits", REGRESSION: "value"}
# The installed torch's release, without its build label: "2.13.0", not "2.13.0+cpu".
TORCH_RELEASE = torch.__version__.split("+")[0]
# The largest float32: a card's standardisation becomes float32 buffers of the model.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class StandardizedModel(nn.Module):
    """The model behind the train split's standardisation, so it takes raw features."""

    def __init__(self, model: nn.Module, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("feature_mean", torch.from_numpy(np.array(mean, dtype=np.float32)))
        self.register_buffer("feature_std", torch.from_numpy(np.array(std, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.feature_mean) / self.feature_std)


def deployable(
    model: nn.Module,
    mean: Sequence[float] | np.ndarray | None,
    std: Sequence[float] | np.ndarray | None,
) -> nn.Module:
    """The model as it runs on raw features: behind the standardisation, if there is one."""
    return (model if mean is None else StandardizedModel(model, mean, std)).eval()


def program_bytes(model: nn.Module, in_features: int) -> bytes:
    """`torch.export` the model with a dynamic batch size; the program needs no code of ours."""
    example = torch.zeros(2, in_features)  # two rows, so the batch size is not fixed to 1
    try:
        program = torch.export.export(
            model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
    except Exception as error:  # torch.export raises many kinds, all about the model's code
        traced = model.model if isinstance(model, StandardizedModel) else model
        raise UserError(
            f"model.name: torch.export cannot trace {type(traced).__name__}.forward "
            f"({first_line(error)}); a forward that branches on the data's values needs "
            "torch.cond"
        ) from None
    # Each node records the absolute path of the source file it came from; dropped, so the
    # program is the same wherever the repository is checked out.
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    # Example inputs would be a pickle inside the program: nothing a user needs.
    program.example_inputs = None
    buffer = io.BytesIO()
    with torch_release_as_version():
        torch.export.save(program, buffer)
    return portable_serialization_id(buffer.getvalue())


@contextmanager
def torch_release_as_version() -> Iterator[None]:
    """`torch.__version__` without its build label ("2.13.0", not "2.13.0+cpu"), for a save.

    `torch.export.save` records `torch.__version__` in the program, build label and all:
    "+cpu" from PyTorch's CPU index, "+cu130" from PyPI on Linux, none on macOS. The program is
    the same on each build of a release, so the label would only make one model different
    files on different machines; torch has no option for it. `tests/test_utils.py` tells when
    torch stops recording its version this way.
    """
    installed = torch.__version__
    torch.__version__ = type(installed)(TORCH_RELEASE)
    try:
        yield
    finally:
        torch.__version__ = installed


@dataclass(frozen=True)
class Bundle:
    """What the export stage puts in the bundle, and what it checks it against."""

    model: ModelParams
    task: str
    features: Features
    checkpoint: Path
    test: SplitTable  # the test split, raw features
    evaluated: ParquetTable  # what evaluate got from the model for each test row
    provenance: dict[str, Any]  # params, metrics, device and hashes of the inputs
    device: torch.device  # where evaluate ran: the check runs there too


def export_bundle(bundle: Bundle, export_dir: Path) -> None:
    """Write the bundle to a temporary folder, check it, then swap it into `export_dir`."""
    k = len(bundle.features.names)
    model = build_model(bundle.model, in_features=k, out_features=bundle.features.outputs)
    model = load_model(model, bundle.checkpoint)
    card = {
        **bundle.provenance,
        "model": bundle.model.name,
        "model_options": constructor_options(bundle.model),
        "model_source": model_source(bundle.model.name),
        "task": bundle.task,
        "parameters": {name: list(t.shape) for name, t in model.state_dict().items()},
        "input": {"columns": list(bundle.features.names), "dtype": "float32"},
        "output": OUTPUT_KINDS[bundle.task],
        # A multi-class model's labels, in the order of its outputs.
        **({"classes": list(bundle.features.classes)} if bundle.features.classes else {}),
        "standardization": None
        if bundle.features.mean is None
        else {"mean": bundle.features.mean.tolist(), "std": bundle.features.std.tolist()},
        "torch_version": TORCH_RELEASE,
    }
    with atomic_directory(export_dir) as staging:
        atomic_write_bytes(staging / STATE_DICT_FILE, state_dict_bytes(model.state_dict()))
        runnable = deployable(model, bundle.features.mean, bundle.features.std)
        atomic_write_bytes(staging / PROGRAM_FILE, program_bytes(runnable, k))
        card["files"] = {
            name: sha256_of_file(staging / name) for name in (STATE_DICT_FILE, PROGRAM_FILE)
        }
        atomic_write_json(staging / CARD_FILE, card)
        _check_reloaded(staging, bundle)


def _check_reloaded(staging: Path, bundle: Bundle) -> None:
    """Both artifacts, reloaded from disk, must give evaluate's outputs bit for bit."""
    reloaded = {
        "state_dict": model_from_bundle(staging).to(bundle.device),
        "torch.export program": load_program(staging / PROGRAM_FILE).to(bundle.device),
    }
    differing = dict.fromkeys(reloaded, 0)
    for columns, evaluated in zip(bundle.test, bundle.evaluated, strict=True):
        raw = np.column_stack([columns[name] for name in bundle.features.names])
        raw = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)).to(bundle.device)
        for name, model in reloaded.items():
            with torch.inference_mode():
                predicted = model(raw).cpu().numpy().reshape(len(raw), -1)
            expected = np.column_stack([evaluated[column] for column in bundle.evaluated.columns])
            differing[name] += int(np.sum(np.any(predicted != expected, axis=1)))
    for name, count in differing.items():
        if count:
            raise UserError(
                f"export check failed: the reloaded {name} predicts differently from evaluate "
                f"on {count} of {bundle.test.rows} test rows"
            )


def read_card(export_dir: Path) -> dict[str, Any]:
    """The model card, checked: every field predict relies on, of the right type and size."""
    path = export_dir / CARD_FILE
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a pipe or a device would block or never end
            raise UserError(f"{path}: not a regular file (a folder, pipe or device?)")
        if status.st_size > MAX_CARD_BYTES:
            raise UserError(f"{path}: larger than a model card can be ({MAX_CARD_BYTES:,} bytes)")
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: model card not found; run `dvc repro` to export") from None
    # RecursionError: JSON nested deeper than the parser's recursion allows ([[[...]]]).
    except (OSError, ValueError, RecursionError) as error:
        raise UserError(f"{path}: not a readable model card ({first_line(error)})") from None
    problem = _card_problem(card)
    if problem:
        raise UserError(f"{path}: not a model card of this pipeline: {problem}")
    return card


def _card_problem(card: Any) -> str | None:
    if not isinstance(card, dict):
        return f"expected a JSON object, got {type(card).__name__}"
    if not isinstance(card.get("model"), str):
        return f"model must be a class of model_builder: {', '.join(model_classes())}"
    if card.get("task") not in TASKS:
        return f"task must be one of {', '.join(TASKS)}"
    if not isinstance(card.get("model_options"), dict):
        return "model_options must be a mapping of the model's keyword arguments"
    columns = card["input"].get("columns") if isinstance(card.get("input"), dict) else None
    if not (isinstance(columns, list) and columns and all(isinstance(c, str) for c in columns)):
        return "input.columns must be a list of column names"
    if card.get("output") != OUTPUT_KINDS[card["task"]]:
        return f"output must be {OUTPUT_KINDS[card['task']]!r} for task {card['task']}"
    classes = card.get("classes")
    if (card["output"] == "logits") != isinstance(classes, list) or (
        classes is not None
        and (
            len(classes) < 2
            or any(_finite(c) is None for c in classes)
            # Each class names an output column, probability_LABEL: no two the same.
            or len({class_name(c) for c in classes}) != len(classes)
        )
    ):
        return (
            "classes must list the distinct labels of a multi-class model (logits), and only then"
        )
    if not isinstance(card.get("model_source", ""), str):
        return "model_source must be the sha256 of the model's code"
    files = card.get("files")
    if not (isinstance(files, dict) and isinstance(files.get(STATE_DICT_FILE), str)):
        return f"files.{STATE_DICT_FILE} must hold its sha256"
    scaling = card.get("standardization")
    if scaling is not None:
        if not isinstance(scaling, dict):
            return "standardization must be null or {mean, std}"
        for name in ("mean", "std"):
            values = scaling.get(name)
            if not (isinstance(values, list) and len(values) == len(columns)) or any(
                isinstance(v, bool) or not isinstance(v, int | float) for v in values
            ):
                return f"standardization.{name} must hold one number per input column"
        # The model holds them as float32: each must be finite there, and a std not round to 0.
        mean = [_finite(v) for v in scaling["mean"]]
        std = [_finite(v) for v in scaling["std"]]
        if any(v is None or abs(v) > FLOAT32_MAX for v in mean + std) or not all(
            np.float32(v) > 0 for v in std
        ):
            return "standardization needs finite float32 means and stds > 0"
    return None


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else, NaN, Infinity, or an integer
    too large for a float (JSON has no limit on digits; `float()` refuses 10**400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def model_from_bundle(export_dir: Path) -> nn.Module:
    """The model rebuilt from the card and `model.pt`, loaded with `weights_only=True`.

    No code from the bundle runs: the architecture comes from this repository, the file holds
    only tensors, and its sha256 must be the one the card records.
    """
    card = read_card(export_dir)
    path = _verified(export_dir, card, STATE_DICT_FILE)
    columns = card["input"]["columns"]
    try:
        model_class(card["model"])
    except UserError:  # renamed or removed since the export; its program needs no class
        raise UserError(
            f"{export_dir / CARD_FILE}: its model {card['model']!r} is no class of "
            f"pytorch_workflow/model_builder.py here ({', '.join(model_classes())}): check out "
            "the commit that exported it, or run the bundle's program with --trust-program"
        ) from None
    model_params = ModelParams(card["model"], card["model_options"])
    recorded = card.get("model_source")
    if recorded is not None and recorded != model_source(model_params.name):
        raise UserError(
            f"{export_dir}: the code of model {card['model']} (pytorch_workflow/"
            "model_builder.py) changed since the bundle was exported, and its weights would "
            "run in other code: --trust-program runs the exported program; `dvc repro` "
            "exports the workspace's model again; a release's code is at its git tag"
        )
    outputs = len(card.get("classes") or [None])
    model = build_model(model_params, in_features=len(columns), out_features=outputs)
    model = load_model(model, path)
    scaling = card["standardization"] or {}
    return deployable(model, scaling.get("mean"), scaling.get("std"))


def program_from_bundle(export_dir: Path) -> nn.Module:
    """The bundle's `torch.export` program, its sha256 checked against the card. Loading it
    runs code from it: trusted bundles only."""
    return load_program(_verified(export_dir, read_card(export_dir), PROGRAM_FILE))


def _verified(export_dir: Path, card: dict[str, Any], name: str) -> Path:
    """The bundle's file `name`, whose sha256 must be the one the card records."""
    path = export_dir / name
    recorded = card["files"].get(name)
    if not isinstance(recorded, str):
        raise UserError(f"{export_dir / CARD_FILE}: records no sha256 of {name}; export it again")
    if path.is_file() and sha256_of_file(path) != recorded:
        raise UserError(
            f"{path}: its sha256 is not the one {CARD_FILE} records: "
            "the bundle was changed or damaged; export or fetch it again"
        )
    return path


def load_program(path: Path) -> nn.Module:
    """`torch.export.load` a program. Loading one runs code from it: trusted files only."""
    if not path.is_file():
        raise UserError(f"{path}: exported program not found; run `dvc repro`")
    check_archive_size(path)
    try:
        return torch.export.load(path).module()
    except Exception as error:
        raise UserError(
            f"{path}: not a loadable torch.export program ({first_line(error)})"
        ) from None
