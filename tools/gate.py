"""The regression gate: how far each metric may move the wrong way against a base revision.

The allowances live in one file, `regression_gate.yaml`, keyed like `dvc metrics diff` (the
metrics file, then the metric, nested keys joined with dots):

    metrics/evaluate.json:
      mae: {max_increase: 0.001}   # lower is better: fail if it rises by more than 0.001
      r2: {max_decrease: 0.05}     # higher is better: fail if it falls by more than 0.05

A metric that neither revision records is another task's (a classifier records no mae) and is
not judged.

No stage imports this module: changing the gate never reruns the pipeline.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytorch_workflow.errors import UserError
from pytorch_workflow.params import load_yaml

GATE_FILE = "regression_gate.yaml"
DIRECTIONS = ("max_increase", "max_decrease")


@dataclass(frozen=True)
class Allowance:
    """One gated metric: `direction` is the way it may not move by more than `amount`."""

    file: str
    metric: str
    direction: str  # "max_increase" (lower is better) or "max_decrease" (higher is better)
    amount: float

    @property
    def name(self) -> str:
        return f"{self.file}:{self.metric}"


@dataclass(frozen=True)
class Verdict:
    allowance: Allowance
    old: float | None
    new: float | None

    @property
    def change(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def worsening(self) -> float | None:
        """How far the metric moved the wrong way (negative when it improved)."""
        change = self.change
        if change is None:
            return None
        return change if self.allowance.direction == "max_increase" else -change

    @property
    def recorded(self) -> bool:
        """Whether either revision records the metric. One gate serves every task: a regressor
        records no accuracy, a classifier no mae, and neither is judged on the other's."""
        return self.old is not None or self.new is not None

    @property
    def passed(self) -> bool:
        if not self.recorded:
            return True  # another task's metric
        if self.new is None or not math.isfinite(self.new):
            return False  # the workspace lost the metric, or it is NaN
        if self.old is None:
            return True  # a new metric has nothing to regress from
        return self.worsening <= self.allowance.amount

    def describe(self) -> str:
        """One line for a failure, naming the metric and by how much it moved."""
        name = self.allowance.name
        if self.new is None:
            return f"{name} is missing from the workspace (base: {self.old:.6g})"
        if not math.isfinite(self.new):
            return f"{name} is {self.new} in the workspace (base: {self.old})"
        verb = "rose" if self.allowance.direction == "max_increase" else "fell"
        return (
            f"{name} {verb} by {abs(self.change):.6g} ({self.old:.6g} -> {self.new:.6g}), "
            f"more than the allowed {self.allowance.amount:g}"
        )


def load_allowances(path: str | Path = GATE_FILE) -> list[Allowance]:
    """Read and check the gate file; a mistake is a one-line error naming the entry."""
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: gate file not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the gate ({error})") from None
    return parse_allowances(text, path)


def parse_allowances(text: bytes | str, path: str | Path) -> list[Allowance]:
    """Check a gate file's text; `path` names it in errors (a file, or REVISION:FILE)."""
    declared = load_yaml(text, path)  # as DVC reads YAML: `1e-3` is a number
    if not isinstance(declared, dict) or not declared:
        raise UserError(f"{path}: expected metrics files mapped to their metrics")
    allowances = []
    for file, metrics in declared.items():
        if not isinstance(metrics, dict) or not metrics:
            raise UserError(f"{path}: {file} must map metric names to allowances")
        for metric, rule in metrics.items():
            allowances.append(_allowance(path, str(file), str(metric), rule))
    return allowances


def _allowance(path: str | Path, file: str, metric: str, rule: Any) -> Allowance:
    where = f"{path}: {file}:{metric}"
    if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in DIRECTIONS:
        raise UserError(f"{where} must be {{max_increase: N}} or {{max_decrease: N}}, got {rule!r}")
    direction, amount = next(iter(rule.items()))
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not amount >= 0:
        raise UserError(f"{where}: {direction} must be a number >= 0, got {amount!r}")
    return Allowance(file, metric, direction, float(amount))


def judge(allowances: list[Allowance], metrics_diff: dict[str, Any]) -> list[Verdict]:
    """Each allowance against `dvc metrics diff --all --json`: {file: {metric: {old, new}}}."""
    return [
        Verdict(allowance, *old_and_new(metrics_diff.get(allowance.file, {}).get(allowance.metric)))
        for allowance in allowances
    ]


def old_and_new(entry: Any) -> tuple[float | None, float | None]:
    """A metric's two values in `dvc metrics diff --json` (`{old, new}`), as numbers: None for
    a revision without it, or with text (a device's name)."""
    if not isinstance(entry, dict):
        return None, None
    return as_number(entry.get("old")), as_number(entry.get("new"))


def as_number(value: Any) -> float | None:
    """A metric's value as a number; None for a missing or text value (a device's name)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
