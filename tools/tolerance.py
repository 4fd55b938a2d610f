"""The declared tolerance (`tolerances.yaml`) and the recorded numbers it applies to.

The recorded numbers are every number in `metrics/*.json`, in the plot tables (`plots/*.csv`)
and in DVCLive's files (`dvclive/metrics.json`, `dvclive/plots/metrics/*.tsv`), keyed
`file:name` (`metrics/train.json:learned.bias`, `plots/loss.csv:train_loss.99`): the ones
`dvc metrics`, `dvc plots` and `dvc exp show` show.
"""

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from pytorch_workflow.errors import UserError

TOLERANCE_FILE = Path(__file__).resolve().parents[1] / "tolerances.yaml"
# The committed folders of recorded numbers, in the order a verdict names them: DVCLive's files
# repeat numbers of the others (the losses at each log line).
LIVE_RESULTS = "dvclive/"
RESULTS = ("metrics/", "plots/", LIVE_RESULTS)
# Their files of numbers; the others (plots/*.png) are pictures of them.
NUMBER_FILES = (".json", ".csv", ".tsv")
# Numbers that say how a run ran, not what it found: a param, compared as one.
SETTINGS = ("metrics/train.json:processes",)


@dataclass(frozen=True)
class Tolerance:
    relative: float
    absolute: float

    def agrees(self, committed: float, reproduced: float) -> bool:
        if math.isnan(committed) or math.isnan(reproduced):
            return math.isnan(committed) and math.isnan(reproduced)
        limit = max(self.relative * abs(committed), self.absolute)
        return abs(reproduced - committed) <= limit


def load_tolerance(path: Path = TOLERANCE_FILE) -> Tolerance:
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
        tolerance = Tolerance(float(values["relative"]), float(values["absolute"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"{path.name}: expected relative: and absolute: numbers ({error})"
        ) from None
    if not (tolerance.relative >= 0 and tolerance.absolute >= 0):
        raise UserError(f"{path.name}: relative and absolute must be numbers >= 0")
    return tolerance


def flatten(payload: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a JSON object by dotted key; null counts as NaN (an undefined metric)."""
    flat: dict[str, float] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif value is None:
            flat[f"{prefix}{key}"] = math.nan
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def result_order(name: str) -> tuple[int, str]:
    """Where a results file comes in a verdict: by its folder in RESULTS, then by name."""
    places = (place for place, prefix in enumerate(RESULTS) if name.startswith(prefix))
    return next(places, len(RESULTS)), name


def numbers_of(name: str, text: str) -> dict[str, float]:
    """The numbers of one results file's text (JSON metrics, a CSV plot table, or DVCLive's TSV
    of a metric by step), by key: `file:name`, `file:column.row` or `file:column.step`."""
    if name.endswith(".json"):
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"{name}: not valid JSON ({error}); restore it from git") from None
        if not isinstance(payload, dict):
            raise UserError(f"{name}: not a JSON object of metrics; restore it from git")
        numbers = flatten(payload, f"{name}:")
        return {key: value for key, value in numbers.items() if key not in SETTINGS}
    numbers = {}
    by_step = name.endswith(".tsv")
    rows = csv.DictReader(io.StringIO(text), delimiter="\t" if by_step else ",")
    for row_number, row in enumerate(rows):
        label = row.get("step", row_number) if by_step else row_number
        for column, cell in row.items():
            try:
                numbers[f"{name}:{column}.{label}"] = float(cell)
            except (TypeError, ValueError):
                continue
    return numbers


def number_files(names: list[str]) -> list[str]:
    """The result files among `names` that hold recorded numbers, in RESULTS' order."""
    return sorted((name for name in names if name.endswith(NUMBER_FILES)), key=result_order)


def largest_difference(
    committed: dict[str, float], reproduced: dict[str, float], tolerance: Tolerance
) -> tuple[str | None, float, list[str]]:
    """The key with the largest relative difference (the first of equals, in the order of
    `committed`), that difference, and the keys outside the tolerance (a number that appears or
    disappears is outside it)."""
    outside = sorted(set(committed) ^ set(reproduced))
    largest, worst = None, 0.0
    for key in [key for key in committed if key in reproduced]:
        a, b = committed[key], reproduced[key]
        if not tolerance.agrees(a, b):
            outside.append(key)
        if math.isfinite(a) and math.isfinite(b) and a != b:
            relative = abs(b - a) / max(abs(a), tolerance.absolute)
            if relative > worst:
                largest, worst = key, relative
    return largest, worst, outside
