"""`params.yaml`: read it, check every key against one schema, hand the stages typed values.

This module also declares each vocabulary of its own once (tasks, losses, devices): the check
uses it here, `engine` resolves the same names, and `docs/params.md` lists them. Models,
optimizers and schedulers are not listed here: they are torch's (`torch.optim`) and the user's
(`model_builder`), resolved by name where torch is imported. This module imports no torch, so a
typo in the file's shape fails in a fraction of a second.

`dvc exp run -S train.lr=1e-6` writes `1e-06`, which YAML reads as a string, so numbers are
also accepted as numeric strings (DVC issue 5971).
"""

import difflib
import inspect
import math
import operator
import os
import re
import stat
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent

from pytorch_workflow.errors import (
    TORCH_ERRORS,
    UserError,
    described,
    first_line,
    in_copy_of_workspace,
    line_in_class_file,
)

PARAMS_FILE = "params.yaml"
MAX_THREADS = 1024

# ---- vocabularies -----------------------------------------------------------------------------

REGRESSION = "regression"
CLASSIFICATION = "binary_classification"
MULTICLASS = "multiclass_classification"
TASKS = (REGRESSION, CLASSIFICATION, MULTICLASS)
# Each task's headline test metric (in metrics/evaluate.json), and whether higher is better.
HEADLINE_METRIC = {
    REGRESSION: ("mae", False),
    CLASSIFICATION: ("accuracy", True),
    MULTICLASS: ("accuracy", True),
}
SOURCES = ("line", "csv")


@dataclass(frozen=True)
class Loss:
    label: str  # how the course's log line names it: "MAE Train Loss"
    module: str  # the torch.nn class
    task: str


LOSSES = {
    "l1": Loss("MAE", "L1Loss", REGRESSION),
    "mse": Loss("MSE", "MSELoss", REGRESSION),
    "huber": Loss("Huber", "HuberLoss", REGRESSION),
    "bce": Loss("BCE", "BCEWithLogitsLoss", CLASSIFICATION),
    "cross_entropy": Loss("Cross-entropy", "CrossEntropyLoss", MULTICLASS),
}
# model.activation: the torch.nn class between the layers of a model that takes `activation`.
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "none": None}
DEVICE_CHOICES = "cpu, auto, cuda, cuda:N or mps"
_DEVICE = re.compile(r"cpu|auto|mps|cuda(:[0-9]{1,3})?")

# ---- limits: what can finish, and what a typo looks like ---------------------------------------

# A data.step typo that would make a line of more rows than this would take days to run.
MAX_ROWS = 10_000_000_000
# params.yaml holds a few dozen short values; anything bigger or deeper is not a params file.
MAX_PARAMS_BYTES = 64 * 1024
MAX_NESTING = 8
# model.hidden_units: more layers or wider ones than this are a typo, not an experiment.
MAX_HIDDEN_LAYERS = 64
MAX_HIDDEN_UNITS = 1_000_000


@dataclass(frozen=True)
class DataParams:
    source: str
    path: str
    test_path: str | None  # csv only: the test split as it is; None = split `path`
    target: str
    features: tuple[str, ...] | None
    standardize: bool
    chunk_rows: int
    weight: float
    bias: float
    start: float
    end: float
    step: float
    noise_std: float


@dataclass(frozen=True)
class SplitParams:
    train_fraction: float
    shuffle: bool
    stratify: bool


# A class's keyword arguments as params.yaml gives them: `{momentum: 0.9}`.
Options = dict[str, Any]


@dataclass(frozen=True)
class ModelParams:
    name: str  # a class of `model_builder`, by its name or the short name it declares
    options: Options  # its constructor's keyword arguments
    # For a constructor that takes them (the `mlp`); None where they come from `options`.
    hidden_units: tuple[int, ...] | None = None
    activation: str | None = None

    def architecture(self) -> Options:
        """The layout keys the pipeline hands a constructor that asks for them."""
        layout = {"hidden_units": self.hidden_units, "activation": self.activation}
        return {key: value for key, value in layout.items() if value is not None}


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int | None  # None: the whole split in one step, as in the course
    lr: float
    loss: str
    loss_options: Options  # the torch.nn loss's keyword arguments
    optimizer: str  # a torch.optim class, by name, any case
    optimizer_options: Options
    scheduler: str | None  # a torch.optim.lr_scheduler class, by name, any case
    scheduler_options: Options
    l2: float
    processes: int
    log_every: int


@dataclass(frozen=True)
class Params:
    seed: int
    device: str
    threads: int
    task: str
    data: DataParams
    split: SplitParams
    model: ModelParams
    train: TrainParams
    raw: dict[str, Any]  # the file as read, for the model card


def _keys(section: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(section))


# The keys of params.yaml, in order: a section's keys are its dataclass's fields.
SCHEMA: dict[str, tuple[str, ...]] = {
    "seed": (),
    "device": (),
    "threads": (),
    "task": (),
    "data": _keys(DataParams),
    "split": _keys(SplitParams),
    "model": _keys(ModelParams),
    "train": _keys(TrainParams),
}
KNOWN_KEYS = [
    f"{section}.{key}" if key else section
    for section, keys in SCHEMA.items()
    for key in (keys or ("",))
]


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check the whole params file; raise `UserError` naming the first bad key."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    _check_keys(raw, path)
    reader = _Reader(raw, path)
    task = reader.choice("task", TASKS)
    data = DataParams(
        source=reader.choice("data.source", SOURCES),
        path=reader.text("data.path"),
        test_path=reader.text("data.test_path", optional=True),
        target=reader.text("data.target"),
        features=reader.names("data.features"),
        standardize=reader.boolean("data.standardize"),
        chunk_rows=reader.integer("data.chunk_rows", at_least=1, at_most=100_000_000),
        weight=reader.number("data.weight"),
        bias=reader.number("data.bias"),
        start=reader.number("data.start"),
        end=reader.number("data.end"),
        step=reader.number("data.step", above=0.0),
        noise_std=reader.number("data.noise_std", at_least=0.0),
    )
    if data.source == "line" and task != REGRESSION:
        raise UserError(
            f"{path}: task: {task} needs class labels, and data.source: line makes a regression "
            "target (y = weight * X + bias); use task: regression, or data.source: csv"
        )
    if data.test_path is not None and data.source != "csv":
        raise UserError(f"{path}: data.test_path needs data.source: csv, got {data.source}")
    if data.source == "csv" and data.features and data.target in data.features:
        raise UserError(f"{path}: data.features must not include the target column {data.target!r}")
    if not data.end > data.start:
        raise UserError(
            f"{path}: data.end must be greater than data.start ({data.start:g}), got {data.end:g}"
        )
    rows = line_length(data.start, data.end, data.step)
    if data.source == "line" and rows > MAX_ROWS:
        raise UserError(
            f"{path}: data.step={data.step:g} makes {_count(rows)} rows from {data.start:g} to "
            f"{data.end:g}; at most {MAX_ROWS:,} are allowed (a larger data.step makes fewer)"
        )
    split = SplitParams(
        train_fraction=reader.number("split.train_fraction", above=0.0, below=1.0),
        shuffle=reader.boolean("split.shuffle"),
        stratify=reader.boolean("split.stratify"),
    )
    if split.stratify and task == REGRESSION:
        raise UserError(f"{path}: split.stratify needs a classification task, got {task}")
    train = TrainParams(
        epochs=reader.integer("train.epochs", at_least=1, at_most=1_000_000),
        batch_size=reader.optional_integer("train.batch_size", at_least=1),
        lr=reader.number("train.lr", above=0.0, at_most=1e6),
        loss=reader.choice(
            "train.loss",
            tuple(name for name, loss in LOSSES.items() if loss.task == task),
            f"with task: {task}",
        ),
        loss_options=reader.options("train.loss_options"),
        optimizer=reader.identifier("train.optimizer"),
        optimizer_options=reader.options("train.optimizer_options"),
        scheduler=reader.identifier("train.scheduler", optional=True),
        scheduler_options=reader.options("train.scheduler_options"),
        l2=reader.number("train.l2", at_least=0.0, at_most=1e12),
        processes=reader.integer("train.processes", at_least=1, at_most=256),
        log_every=reader.integer("train.log_every", at_least=1),
    )
    if train.scheduler is None and train.scheduler_options:
        raise UserError(
            f"{path}: train.scheduler_options need a train.scheduler; it is null "
            "(-S train.scheduler_options=null empties them)"
        )
    if train.optimizer.lower() == "lbfgs" and train.batch_size is not None:
        raise UserError(
            f"{path}: train.optimizer: lbfgs takes the whole split in each step; "
            f"set train.batch_size: null, got {train.batch_size}"
        )
    params = Params(
        seed=reader.integer("seed", at_least=0, at_most=2**32 - 1),
        device=reader.device("device"),
        threads=reader.integer("threads", at_least=1, at_most=MAX_THREADS),
        task=task,
        data=data,
        split=split,
        model=ModelParams(
            name=reader.identifier("model.name"),
            options=reader.options("model.options"),
            hidden_units=reader.widths("model.hidden_units"),
            activation=reader.choice("model.activation", tuple(ACTIVATIONS)),
        ),
        train=train,
        raw=raw,
    )
    if data.source == "line":
        train_rows(split.train_fraction, rows, where=f"{path}: ")
    return params


def train_rows(fraction: float, rows: int, where: str = "") -> int:
    """How many of `rows` go to train: `int(fraction * rows)`, as the course splits; both
    splits must keep some."""
    count = int(fraction * rows)
    if not 1 <= count < rows:
        raise UserError(
            f"{where}split.train_fraction={fraction:g} leaves an empty split of {rows:,} rows "
            f"({count:,} train, {rows - count:,} test)"
        )
    return count


def line_length(start: float, end: float, step: float) -> int | float:
    """How many values `torch.arange(start, end, step)` makes (its formula); inf if unbounded."""
    count = (end - start) / step
    return max(math.ceil(count), 0) if math.isfinite(count) else math.inf


def _count(rows: int | float) -> str:
    """A row count as people read it: 1,000,000 or 1e+300, never 300 digits."""
    if not math.isfinite(rows):
        return "more than 1e+308"
    return f"{rows:,}" if rows < 10**15 else f"{float(rows):.3g}"


def parse_device(text: str) -> tuple[str, int | None]:
    """("cuda", 1) for "cuda:1", ("cpu", None) for "cpu"; the one grammar of `device`."""
    if not _DEVICE.fullmatch(text):
        raise UserError(f"device must be {DEVICE_CHOICES}, got {text!r}")
    kind, _, index = text.partition(":")
    return kind, int(index) if index else None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A small YAML file as a dict, read as DVC reads it, refusing what could exhaust memory or
    the stack first.

    DVC reads params.yaml as YAML 1.2 with ruamel.yaml, and so does this: PyYAML's YAML 1.1
    would read `epochs: 0300` as octal 192 and `seed: 1:10` as 70 while `dvc params diff`
    shows 300 and "1:10". Like DVC, a duplicated key is refused.

    YAML aliases can expand a 1 KB file into gigabytes ("billion laughs") and deep nesting can
    exhaust Python's stack, so both are refused by scanning the parser's events, which expand
    nothing, before anything is built. Only a regular file is read: a pipe or a device would
    block or never end.
    """
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise UserError(f"{path}: not a regular file (a folder, pipe or device?)")
        size = status.st_size
        if size > MAX_PARAMS_BYTES:
            raise UserError(
                f"{path}: {size:,} bytes; a params file is at most {MAX_PARAMS_BYTES:,}"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({error})") from None
    return parse_yaml_mapping(text, path)


def parse_yaml_mapping(text: str, path: Path) -> dict[str, Any]:
    """`read_yaml_mapping` of a text already read; `path` names it in errors."""
    loaded = load_yaml(text, path)
    if loaded is None:
        raise UserError(f"{path}: the file is empty; expected the keys {', '.join(SCHEMA)}")
    if not isinstance(loaded, dict):
        raise UserError(
            f"{path}: expected a mapping of keys ({', '.join(SCHEMA)}), "
            f"got a {type(loaded).__name__}"
        )
    return loaded


def load_yaml(text: str | bytes, path: str | Path) -> Any:
    """A YAML text read as DVC reads params (YAML 1.2, duplicated keys refused), aliases and
    deep nesting refused first (why: `read_yaml_mapping`); a mistake is one line naming `path`."""
    reader = YAML(typ="safe")  # as dvc.utils.serialize.parse_yaml reads params
    try:
        depth = 0
        for event in reader.parse(text):
            if isinstance(event, AliasEvent):
                raise UserError(
                    f"{path}: line {event.start_mark.line + 1}: YAML alias *{event.anchor}; "
                    "write the value out instead of referring to an anchor"
                )
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise UserError(
                        f"{path}: line {event.start_mark.line + 1}: nested more than "
                        f"{MAX_NESTING} levels deep; expected sections of plain values"
                    )
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
        loaded = reader.load(text)
    except DuplicateKeyError as error:
        # Its text shows the values before nested ones are read: `with value "{}"` for both.
        duplicate = error.problem.split(" with value ")[0].removeprefix("found ")
        at = f" line {error.problem_mark.line + 1}:" if error.problem_mark else ""
        raise UserError(f"{path}:{at} {duplicate}; keep one of them") from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}:" if mark else ""
        raise UserError(f"{path}:{where} YAML syntax error: {error.problem}") from None
    except YAMLError as error:
        raise UserError(f"{path}: YAML error: {first_line(error)}") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise UserError(f"{path}: a value cannot be read: {first_line(error)}") from None
    return loaded


def _check_keys(raw: dict[str, Any], path: Path) -> None:
    for section, value in raw.items():
        if section not in SCHEMA:
            raise UserError(f"{path}: unknown key {str(section)!r}{_suggestion(str(section))}")
        if SCHEMA[section] and not isinstance(value, dict):
            raise UserError(
                f"{path}: {section!r} must be a mapping with keys {', '.join(SCHEMA[section])}, "
                f"got {_shown(value)}"
            )
        for key in value if SCHEMA[section] else ():
            if key not in SCHEMA[section]:
                dotted = f"{section}.{key}"
                raise UserError(f"{path}: unknown key {dotted!r}{_suggestion(dotted)}")
    for known in KNOWN_KEYS:
        section, _, key = known.partition(".")
        if section not in raw or (key and key not in raw[section]):
            raise UserError(f"{path}: missing key {known!r}; add it (see docs/params.md)")


# Keys of earlier versions of params.yaml, and where their values go now.
MOVED_KEYS = {"train.momentum": "train.optimizer_options.momentum (an option of SGD)"}


def _suggestion(key: str) -> str:
    """The known key meant: where a removed key went, one of the same last name in another
    section (`train.device` is `device`), else the closest spelling."""
    if key in MOVED_KEYS:
        return f"; it is {MOVED_KEYS[key]} now"
    leaf = key.rsplit(".", 1)[-1]
    moved = [known for known in KNOWN_KEYS if known.rsplit(".", 1)[-1] == leaf]
    close = moved or difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(KNOWN_KEYS)}"


def _shown(value: Any) -> str:
    """A value as the error shows it: YAML's null, true and false, else repr; cut to a readable
    length."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# How `_Reader.number` names and checks its bounds: above, at_least, below, at_most.
_BOUNDS = ((">", operator.gt), (">=", operator.ge), ("<", operator.lt), ("<=", operator.le))


QUOTE_NAMES = "a name that YAML reads as a value goes in quotes, as the CSV spells it"


class _Reader:
    """Reads one dotted key at a time and checks its type and range."""

    def __init__(self, raw: dict[str, Any], path: Path) -> None:
        self.raw = raw
        self.path = path

    def _get(self, key: str) -> Any:
        section, _, name = key.partition(".")
        return self.raw[section][name] if name else self.raw[section]

    def _fail(self, key: str, expected: str) -> UserError:
        value = self._get(key)
        return UserError(f"{self.path}: {key} must be {expected}, got {_shown(value)}")

    def _finite(self, key: str, expected: str) -> float:
        """The value as a finite float; numbers written as strings (`"1e-06"`) count, but not
        text with Python's underscores (`"1_000"`, `0E0_0`), which DVC shows as text."""
        value = self._get(key)
        if isinstance(value, str) and len(value) <= 40 and "_" not in value:
            value = value.strip()
        elif not isinstance(value, int | float) or isinstance(value, bool):
            raise self._fail(key, expected)
        try:
            number = float(value)
        except (ValueError, OverflowError):  # not a number; an int too large for a float
            raise self._fail(key, expected) from None
        if not math.isfinite(number):
            raise self._fail(key, expected)
        return number

    def number(
        self,
        key: str,
        *,
        above: float | None = None,
        at_least: float | None = None,
        below: float | None = None,
        at_most: float | None = None,
    ) -> float:
        bounds = zip(_BOUNDS, (above, at_least, below, at_most), strict=True)
        limits = [(*bound, value) for bound, value in bounds if value is not None]
        shown = " and ".join(f"{sign} {limit:g}" for sign, _, limit in limits)
        expected = f"a number {shown}" if limits else "a finite number"
        number = self._finite(key, expected)
        if not all(test(number, limit) for _, test, limit in limits):
            raise self._fail(key, expected)
        return number

    def integer(self, key: str, *, at_least: int, at_most: int | None = None) -> int:
        limits = f">= {at_least:,}" + (f" and <= {at_most:,}" if at_most is not None else "")
        expected = f"a whole number {limits}"
        number = self._finite(key, expected)
        too_large = at_most is not None and number > at_most
        if number != int(number) or number < at_least or too_large:
            raise self._fail(key, expected)
        return int(number)

    def optional_integer(self, key: str, *, at_least: int) -> int | None:
        if self._get(key) is None:
            return None
        return self.integer(key, at_least=at_least, at_most=10**12)

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self._fail(key, "true or false")

    def choice(self, key: str, allowed: tuple[str, ...], context: str = "") -> str:
        """One of `allowed`, in any case (`L1` is `l1`), as the class names are."""
        value = self._get(key)
        by_case = {name.lower(): name for name in allowed}
        if isinstance(value, str) and value.lower() in by_case:
            return by_case[value.lower()]
        raise self._fail(key, f"one of {', '.join(allowed)}{' ' + context if context else ''}")

    def text(self, key: str, optional: bool = False) -> str | None:
        value = self._get(key)
        if optional and value is None:
            return None
        if isinstance(value, str) and value.strip() and "\0" not in value:
            return value
        error = self._fail(key, ("null or " if optional else "") + "a non-empty string")
        if isinstance(value, int | float):  # bool too: `2021`, `true` unquoted
            # Not the value shown: YAML has read `007` as 7 and `1.50` as 1.5.
            raise UserError(f"{error}; {QUOTE_NAMES}: -S \"{key}='NAME'\"")
        raise error

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
        error = self._fail(key, "null or a list of distinct column names")
        if isinstance(value, list) and any(isinstance(name, int | float) for name in value):
            raise UserError(f"{error}; {QUOTE_NAMES}: -S \"{key}=['2021','NAME']\"")
        raise error

    def widths(self, key: str) -> tuple[int, ...]:
        """A list of layer widths, each a whole number >= 1; `[]` is no hidden layer."""
        value = self._get(key)
        expected = (
            f"a list of at most {MAX_HIDDEN_LAYERS} layer widths, "
            f"whole numbers from 1 to {MAX_HIDDEN_UNITS:,}, such as [10, 10]"
        )
        if not isinstance(value, list) or len(value) > MAX_HIDDEN_LAYERS:
            raise self._fail(key, expected)
        widths = []
        for width in value:
            if isinstance(width, str):  # DVC's -S may write numbers as text
                width = width.strip()
                width = int(width) if width.isascii() and width.isdecimal() else width  # not ²
            if not isinstance(width, int) or isinstance(width, bool):
                raise self._fail(key, expected)
            if not 1 <= width <= MAX_HIDDEN_UNITS:
                raise self._fail(key, expected)
            widths.append(width)
        return tuple(widths)

    def identifier(self, key: str, optional: bool = False) -> str | None:
        """A class's name as written (`sgd`, `CircleModelV2`); null too where `optional`."""
        value = self._get(key)
        if optional and value is None:
            return None
        if isinstance(value, str) and value.isidentifier():
            return value
        raise self._fail(key, ("null or " if optional else "") + "a class name such as sgd or adam")

    def options(self, key: str) -> Options:
        """A mapping of keyword arguments to plain values (numbers, text, booleans, lists)."""
        value = self._get(key)
        if value is None:
            return {}
        if isinstance(value, dict) and all(
            isinstance(name, str) and name.isidentifier() for name in value
        ):
            return dict(value)
        raise self._fail(key, "a mapping of keyword arguments, such as {momentum: 0.9}")

    def device(self, key: str) -> str:
        value = self._get(key)
        if isinstance(value, str) and _DEVICE.fullmatch(value):
            return value
        raise self._fail(key, DEVICE_CHOICES)


# ---- classes named in params: models, optimizers, schedulers -----------------------------------


def find_class(key: str, name: str, classes: dict[str, type], where: str) -> type:
    """The class that `name` means among `classes` (by name, any case); one line if none."""
    by_lower = {known.lower(): cls for known, cls in classes.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = closest_name(name, list(classes))
    hint = f"did you mean {classes[close].__name__}?" if close else f"known: {', '.join(classes)}"
    raise UserError(f"{key}: no class {name!r} in {where}; {hint}")


def closest_name(name: str, names: list[str]) -> str:
    """The one of `names` spelt most like `name`, in any case; "" where none is close."""
    by_lower = {known.lower(): known for known in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else ""


class ConstructorError(UserError):
    """The class's constructor itself failed, with options that passed the checks."""


def construct(
    key: str, cls: type, options: Options, given: dict[str, Any], defaults: Options | None = None
) -> Any:
    """`cls(**given, **defaults, **options)`, with the options checked against its constructor
    first.

    Numbers that DVC wrote as strings are read back as numbers where the option's default is
    one, and lists as tuples where it is a tuple (Adam's `betas`). `given` are the arguments
    the pipeline itself passes (the parameters, `lr`, `in_features`): an option may not
    repeat them. `defaults` are arguments that an option may change (a model's layout).
    """
    signature = inspect.signature(cls)
    accepted = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    converted = {}
    for name, value in options.items():
        if name in given:
            raise UserError(f"{key}.{name}: the pipeline sets {name} itself; remove the option")
        if name not in accepted and not takes_any:
            keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            names = [n for n, p in accepted.items() if n not in given and p.kind in keywords]
            names.sort(key=lambda n: n not in (defaults or {}))  # the layout keys first
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else f"its options: {', '.join(names) or 'none'}"
            )
            raise UserError(
                f"{key}: {cls.__name__} has no option {name!r}; {hint} "
                f"(where one is left from another run, -S {key}=null empties {key})"
            )
        default = accepted[name].default if name in accepted else inspect.Parameter.empty
        converted[name] = like_default(value, default)
        number = _number_type(accepted.get(name), default)
        if number is not None:
            converted[name] = _as_number(f"{key}.{name}", cls, converted[name], number)
    try:
        return cls(**given, **{**(defaults or {}), **converted})
    except Exception as error:
        where = line_in_class_file(error, cls)
        if where and not isinstance(error, TORCH_ERRORS):  # a bug in a user's `__init__`
            with_options = f" with {key} {converted}" if converted else ""
            raise ConstructorError(
                f"{cls.__name__} failed{with_options}: {described(error)}{where}"
            ) from None
        given_options = f"refused {converted}" if converted else "failed with no options"
        raise ConstructorError(
            f"{key}: {cls.__name__} {given_options}: {first_line(error)}{where}"
        ) from None


def _number_type(parameter: inspect.Parameter | None, default: Any) -> type | None:
    """`int` or `float` where the option is annotated as that number, alone or with None
    (`T_max: int`, `total_steps: int | None`), as text or a type, and its default is no text to
    contradict it; else None."""
    if parameter is None or isinstance(default, str):
        return None
    annotation = parameter.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = text or str(annotation).removeprefix("typing.")
    for number in (int, float):
        name = number.__name__
        if text in (name, f"{name} | None", f"None | {name}", f"Optional[{name}]"):
            return number
    return None


def _as_number(key: str, cls: type, value: Any, number: type) -> Any:
    """The value of an option annotated as a number: text is refused, and so is a fraction
    where a whole number is wanted (StepLR's `step_size: 2.5` would step on every fifth)."""
    if isinstance(value, str):
        raise UserError(f"{key}: {cls.__name__} takes a number, got {value!r}")
    if number is int and isinstance(value, float):
        if not value.is_integer():
            raise UserError(f"{key}: {cls.__name__} takes a whole number, got {value!r}")
        return int(value)
    return value


def like_default(value: Any, default: Any) -> Any:
    """A value from params.yaml in the type the option expects: DVC writes `1e-05` as a string,
    and YAML has no tuples. Text stays text where the default is text."""
    if isinstance(value, str) and isinstance(default, bool) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # `nesterov: "false"` is not a true string
    if isinstance(value, str) and not isinstance(default, str) and "_" not in value:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            return value
        counts = isinstance(default, int) and not isinstance(default, bool)
        return int(number) if counts and number.is_integer() else number
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


# ---- after a failed `dvc exp run` ---------------------------------------------------------------


def undo_hint_after_failed_experiment(path: str | Path = PARAMS_FILE) -> str:
    """What a failed `dvc exp run` leaves in the workspace's params file, as a hint to append to
    its error: the keys that differ from the last commit and how to restore it; "" when the run
    is not a workspace experiment or no key differs.

    `dvc exp run -S` writes its values into params.yaml before the stages run and keeps them when
    a stage fails, and when a value has the old one's length `git status` may not show the change
    (DVC leaves git's index entry with the file's new size and time), so the hint restores the
    committed file by its content. A queued or `--temp` run works in a copy and leaves the
    workspace as it was.
    """
    in_workspace = "DVC_ROOT" in os.environ and not in_copy_of_workspace()
    if not os.environ.get("DVC_EXP_NAME") or not in_workspace:
        return ""
    # `./` makes git read the file beside the stage, also in a DVC project in a subfolder.
    committed_file = f"HEAD:./{Path(path).as_posix()}"
    try:
        shown = subprocess.run(
            ["git", "show", committed_file], capture_output=True, encoding="utf-8", check=False
        )
    except (OSError, UnicodeDecodeError):  # no git; a committed file that is not text
        return ""
    if shown.returncode != 0:
        return ""
    path = Path(path)
    try:
        changed = _changed_keys_shown(
            parse_yaml_mapping(shown.stdout, path), read_yaml_mapping(path)
        )
        if not changed:  # comments or layout only
            return ""
        what = f" ({changed})"
    except UserError:  # one of the two is not a params mapping: the keys cannot be compared
        what = ""
    return (
        f"; dvc exp run left {path} changed from the last commit{what}: edit it, or restore the "
        f"committed file with `git show {committed_file} > {path}`"
    )


# A key that one of two params mappings lacks.
ABSENT = object()


def changed_values(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Each innermost key whose value differs between two params mappings, dotted
    (`train.epochs`), with its value before and after (ABSENT where a side lacks it)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            change
            for key in sorted(before.keys() | after.keys(), key=str)
            for change in changed_values(
                before.get(key, ABSENT),
                after.get(key, ABSENT),
                f"{prefix}.{key}" if prefix else key,
            )
        ]
    same = before == after and type(before) is type(after)
    return [] if same else [(prefix, before, after)]


# An error stays one readable line: the keys beyond these are counted, not named.
_KEYS_SHOWN = 8


def _changed_keys_shown(committed: dict[str, Any], now: dict[str, Any]) -> str:
    """The keys whose values differ, each with its committed value: `train.lr, was 0.01`."""
    shown = [
        f"{key}, not in the commit"
        if was is ABSENT
        else f"{key}, was {_shown(was)}" + (", now missing" if value is ABSENT else "")
        for key, was, value in changed_values(committed, now)
    ]
    more = f"; and {len(shown) - _KEYS_SHOWN} more" if len(shown) > _KEYS_SHOWN else ""
    return "; ".join(shown[:_KEYS_SHOWN]) + more
