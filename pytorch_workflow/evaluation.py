"""Evaluate a trained model on the test split, chunk by chunk: metrics, plot tables, figure data."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pytorch_workflow import baselines
from pytorch_workflow.data_setup import (
    OUTPUT_COLUMN,
    Features,
    ParquetTable,
    TableWriter,
    arrow_table,
)
from pytorch_workflow.metrics import ClassificationMetrics, RegressionMetrics, sigmoid
from pytorch_workflow.params import CLASSIFICATION

# Plot tables and scatter plots show at most this many points, whatever the data's size.
MAX_PLOT_POINTS = 2000


def plot_rows(rows: int) -> np.ndarray:
    """At most MAX_PLOT_POINTS row numbers, evenly spaced: every row of a small split."""
    shown = min(rows, MAX_PLOT_POINTS)
    return np.unique(np.arange(shown, dtype=np.int64) * rows // shown)


@dataclass
class Sample:
    """The rows of a split that are plotted: raw first feature, target, and the model's output."""

    rows: np.ndarray  # which rows, from `plot_rows`
    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    output: list[np.ndarray] = field(default_factory=list)
    seen: int = 0  # rows of the split passed to `take` so far

    def take(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> None:
        """Keep the plotted rows of the split's next chunk."""
        picked = self.rows[(self.rows >= self.seen) & (self.rows < self.seen + len(y))] - self.seen
        self.seen += len(y)
        self.x.append(x[picked])
        self.y.append(y[picked])
        if out is not None:
            self.output.append(out[picked])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return (
            np.concatenate(self.x),
            np.concatenate(self.y),
            np.concatenate(self.output) if self.output else None,
        )


@dataclass(frozen=True)
class Evaluation:
    metrics: dict
    test: Sample
    train: Sample
    confusion: np.ndarray | None  # counts[actual, predicted] for a classifier


def scaled_chunks(
    table: ParquetTable, features: Features
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(standardised X (n, k), y (n,)) float32 for each chunk of a split."""
    for columns in table:
        yield features.matrix(columns), columns[features.target]


def evaluate(
    model: nn.Module,
    train: ParquetTable,
    test: ParquetTable,
    features: Features,
    task: str,
    device: torch.device,
    outputs_path: Path,
) -> Evaluation:
    """Metrics of the model and of the linear baseline; the model's raw test outputs (values or
    logits) are written to `outputs_path` as they are computed."""
    classifier = task == CLASSIFICATION
    metrics = ClassificationMetrics() if classifier else RegressionMetrics()
    test_sample, train_sample = Sample(plot_rows(test.rows)), Sample(plot_rows(train.rows))
    model.eval()
    with TableWriter(outputs_path, test.offsets[1]) as writer:  # row groups as in the test file
        for columns in test:
            raw = np.column_stack([columns[name] for name in features.names])
            y = columns[features.target]
            X = np.ascontiguousarray(features.scale(raw).astype(np.float32))
            with torch.inference_mode():  # as in the course
                outputs = model(torch.from_numpy(X).to(device)).cpu().numpy().reshape(-1)
            writer.append(arrow_table({OUTPUT_COLUMN: outputs}))
            metrics.add(y, outputs)
            # The figure's x is the raw feature, as the course plots it.
            test_sample.take(raw[:, 0], y, outputs)
    for columns in train:
        train_sample.take(columns[features.names[0]], columns[features.target])
    k = len(features.names)
    result = metrics.result()
    train_chunks = partial(scaled_chunks, train, features)
    test_chunks = partial(scaled_chunks, test, features)
    if classifier:
        baseline = baselines.logistic_metrics(train_chunks, test_chunks, k)
        result["logistic_baseline"] = baseline
        if result["log_loss"] is not None and baseline["log_loss"]:
            result["log_loss_over_baseline"] = result["log_loss"] / baseline["log_loss"]
    else:
        closed_form = baselines.closed_form_metrics(train_chunks, test_chunks, k)
        result["closed_form"] = closed_form
        if result["mse"] is not None and closed_form["mse"]:
            result["mse_over_closed_form"] = result["mse"] / closed_form["mse"]
    return Evaluation(result, test_sample, train_sample, metrics.confusion if classifier else None)


def prediction_table(
    evaluation: Evaluation, features: Features, task: str
) -> dict[str, np.ndarray]:
    """The test sample for `dvc plots`: actual against predicted (and the probability)."""
    x, actual, outputs = evaluation.test.arrays()
    if task == CLASSIFICATION:
        return {
            "actual": actual.astype(np.int64),
            "predicted": (outputs > 0).astype(np.int64),
            "probability": sigmoid(outputs),
        }
    table = {"actual": actual, "predicted": outputs}
    if len(features.names) == 1:
        table = {features.names[0]: x, **table}
    return table
