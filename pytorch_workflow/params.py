"""`params.yaml`: read it, check every key against one schema, hand stages typed values.

`dvc exp run -S train.lr=1e-6` writes `1e-06`, which YAML reads as a string, so numbers are
also accepted as numeric strings.
"""

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytorch_workflow.errors import UserError

PARAMS_FILE = "params.yaml"

# Far beyond what a 24 GiB machine trains on; a tiny data.step is almost always a typo.
MAX_ROWS = 100_000_000

TASKS = ("regression", "binary_classification")
SOURCES = ("line", "csv")
MODEL_NAMES = ("linear_regression", "linear_regression_v2")
LOSSES_BY_TASK = {"regression": ("l1", "mse", "huber"), "binary_classification": ("bce",)}
LOSS_NAMES = tuple(loss for losses in LOSSES_BY_TASK.values() for loss in losses)
OPTIMIZER_NAMES = ("sgd", "adam")


@dataclass(frozen=True)
class DataParams:
    weight: float
    bias: float
    start: float
    end: float
    step: float
    noise_std: float
    source: str = "line"
    path: str = ""
    target: str = "y"
    features: tuple[str, ...] | None = None
    standardize: bool = False


@dataclass(frozen=True)
class SplitParams:
    train_fraction: float
    shuffle: bool


@dataclass(frozen=True)
class ModelParams:
    name: str


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    lr: float
    loss: str
    optimizer: str
    momentum: float
    log_every: int
    batch_size: int | None = None  # None: the whole split at once, as in the course


@dataclass(frozen=True)
class Params:
    seed: int
    device: str
    task: str
    data: DataParams
    split: SplitParams
    model: ModelParams
    train: TrainParams
    raw: dict[str, Any]  # the file as read, for the model card


SCHEMA: dict[str, tuple[str, ...]] = {
    "seed": (),
    "device": (),
    "task": (),
    "data": (
        "source",
        "path",
        "target",
        "features",
        "standardize",
        "weight",
        "bias",
        "start",
        "end",
        "step",
        "noise_std",
    ),
    "split": ("train_fraction", "shuffle"),
    "model": ("name",),
    "train": ("epochs", "batch_size", "lr", "loss", "optimizer", "momentum", "log_every"),
}
KNOWN_KEYS = [
    f"{section}.{key}" if key else section
    for section, keys in SCHEMA.items()
    for key in (keys or ("",))
]


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check the whole params file; raise `UserError` naming the first bad key."""
    raw = _read_yaml(Path(path))
    _check_keys(raw, path)
    reader = _Reader(raw, str(path))
    task = reader.choice("task", TASKS)
    data = DataParams(
        source=reader.choice("data.source", SOURCES),
        path=reader.text("data.path"),
        target=reader.text("data.target"),
        features=reader.names("data.features"),
        standardize=reader.boolean("data.standardize"),
        weight=reader.number("data.weight"),
        bias=reader.number("data.bias"),
        start=reader.number("data.start"),
        end=reader.number("data.end"),
        step=reader.number("data.step", above=0.0),
        noise_std=reader.number("data.noise_std", at_least=0.0),
    )
    if data.source == "csv" and data.features and data.target in data.features:
        raise UserError(f"{path}: data.features must not include the target column {data.target!r}")
    if data.end <= data.start:
        raise UserError(
            f"{path}: data.end must be greater than data.start ({data.start}), got {data.end}"
        )
    rows = arange_length(data.start, data.end, data.step)
    if data.source == "line" and rows > MAX_ROWS:
        raise UserError(
            f"{path}: data.step={data.step} makes {rows:,} rows from {data.start} to {data.end}; "
            f"at most {MAX_ROWS:,} are allowed"
        )
    params = Params(
        seed=reader.integer("seed", at_least=0),
        device=reader.device("device"),
        task=task,
        data=data,
        split=SplitParams(
            train_fraction=reader.number("split.train_fraction", above=0.0, below=1.0),
            shuffle=reader.boolean("split.shuffle"),
        ),
        model=ModelParams(name=reader.choice("model.name", MODEL_NAMES)),
        train=TrainParams(
            epochs=reader.integer("train.epochs", at_least=1),
            batch_size=reader.optional_integer("train.batch_size", at_least=1),
            lr=reader.number("train.lr", above=0.0),
            loss=reader.choice("train.loss", LOSSES_BY_TASK[task], f"with task: {task}"),
            optimizer=reader.choice("train.optimizer", OPTIMIZER_NAMES),
            momentum=reader.number("train.momentum", at_least=0.0, below=1.0),
            log_every=reader.integer("train.log_every", at_least=1),
        ),
        raw=raw,
    )
    train_rows = int(params.split.train_fraction * rows)
    if data.source == "line" and not 1 <= train_rows < rows:
        raise UserError(
            f"{path}: split.train_fraction={params.split.train_fraction} leaves an empty split "
            f"of the {rows} rows ({train_rows} train, {rows - train_rows} test)"
        )
    return params


def arange_length(start: float, end: float, step: float) -> int:
    """How many values `torch.arange(start, end, step)` makes (its own formula)."""
    return max(math.ceil((end - start) / step), 0)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({error})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where}: YAML syntax error: {error.problem}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: YAML error: {error}") from None
    if loaded is None:
        raise UserError(f"{path}: the file is empty; expected the keys {', '.join(SCHEMA)}")
    if not isinstance(loaded, dict):
        raise UserError(
            f"{path}: expected a mapping of keys ({', '.join(SCHEMA)}), "
            f"got a {type(loaded).__name__}"
        )
    return loaded


def _check_keys(raw: dict[str, Any], path: str | Path) -> None:
    for section, value in raw.items():
        if section not in SCHEMA:
            raise UserError(f"{path}: unknown key '{section}'{_suggestion(str(section))}")
        if SCHEMA[section] and not isinstance(value, dict):
            raise UserError(
                f"{path}: '{section}' must be a mapping with keys {', '.join(SCHEMA[section])}, "
                f"got {value!r}"
            )
        if SCHEMA[section]:
            for key in value:
                if key not in SCHEMA[section]:
                    dotted = f"{section}.{key}"
                    raise UserError(f"{path}: unknown key '{dotted}'{_suggestion(dotted)}")
    for known in KNOWN_KEYS:
        section, _, key = known.partition(".")
        if section not in raw or (key and key not in raw[section]):
            raise UserError(f"{path}: missing key '{known}'")


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(KNOWN_KEYS)}"


class _Reader:
    """Reads one dotted key at a time and checks its type and range."""

    def __init__(self, raw: dict[str, Any], path: str) -> None:
        self.raw = raw
        self.path = path

    def _get(self, key: str) -> Any:
        section, _, name = key.partition(".")
        return self.raw[section][name] if name else self.raw[section]

    def _fail(self, key: str, value: Any, expected: str) -> UserError:
        return UserError(f"{self.path}: {key} must be {expected}, got {value!r}")

    def _finite(self, key: str, expected: str) -> float:
        """The value as a finite float; numbers written as strings (`1e-06`) count."""
        value = self._get(key)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise self._fail(key, value, expected) from None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            raise self._fail(key, value, expected)
        if not math.isfinite(number):
            raise self._fail(key, value, expected)
        return number

    def number(
        self,
        key: str,
        *,
        above: float | None = None,
        at_least: float | None = None,
        below: float | None = None,
    ) -> float:
        expected = _describe_range("a number", above, at_least, below)
        number = self._finite(key, expected)
        if (
            (above is not None and not number > above)
            or (at_least is not None and not number >= at_least)
            or (below is not None and not number < below)
        ):
            raise self._fail(key, self._get(key), expected)
        return number

    def integer(self, key: str, *, at_least: int) -> int:
        expected = f"a whole number >= {at_least}"
        number = self._finite(key, expected)
        if number != int(number) or int(number) < at_least:
            raise self._fail(key, self._get(key), expected)
        return int(number)

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self._fail(key, value, "true or false")

    def optional_integer(self, key: str, *, at_least: int) -> int | None:
        if self._get(key) is None:
            return None
        return self.integer(key, at_least=at_least)

    def choice(self, key: str, allowed: tuple[str, ...], context: str = "") -> str:
        value = self._get(key)
        if isinstance(value, str) and value in allowed:
            return value
        raise self._fail(
            key, value, f"one of {', '.join(allowed)}{' ' + context if context else ''}"
        )

    def text(self, key: str) -> str:
        value = self._get(key)
        if isinstance(value, str) and value.strip():
            return value
        raise self._fail(key, value, "a non-empty string")

    def names(self, key: str) -> tuple[str, ...] | None:
        """null, or a non-empty list of distinct column names."""
        value = self._get(key)
        if value is None:
            return None
        if (
            isinstance(value, list)
            and value
            and all(isinstance(name, str) and name.strip() for name in value)
            and len(set(value)) == len(value)
        ):
            return tuple(value)
        raise self._fail(key, value, "null or a list of distinct column names")

    def device(self, key: str) -> str:
        value = self._get(key)
        expected = "auto, cpu, cuda, cuda:N or mps"
        if not isinstance(value, str):
            raise self._fail(key, value, expected)
        if value in ("auto", "cpu", "cuda", "mps"):
            return value
        kind, _, index = value.partition(":")
        if kind == "cuda" and index.isdigit():
            return value
        raise self._fail(key, value, expected)


def _describe_range(
    noun: str, above: float | None, at_least: float | None, below: float | None
) -> str:
    limits = []
    if above is not None:
        limits.append(f"> {above:g}")
    if at_least is not None:
        limits.append(f">= {at_least:g}")
    if below is not None:
        limits.append(f"< {below:g}")
    return f"{noun} {' and '.join(limits)}" if limits else f"a finite {noun[2:]}"
