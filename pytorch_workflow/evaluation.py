"""Evaluate a trained model on the test split, chunk by chunk: metrics, plot tables, figure data."""

from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """The plotted rows of a split: raw first feature, target, and the model's output."""

    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    output: list[np.ndarray] = field(default_factory=list)

    def take(self, first: int, rows: np.ndarray, x: np.ndarray, y: np.ndarray, out=None) -> None:
        picked = rows[(rows >= first) & (rows < first + len(y))] - first
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
        X = np.column_stack([columns[name] for name in features.names])
        yield features.scale(X).astype(np.float32, copy=False), columns[features.target]


def predict_outputs(model: nn.Module, X: np.ndarray, device: torch.device) -> np.ndarray:
    """The model's outputs under `torch.inference_mode()`, as in the course."""
    model.eval()
    with torch.inference_mode():
        outputs = model(torch.from_numpy(np.ascontiguousarray(X)).to(device))
    return outputs.cpu().numpy().reshape(-1)


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
    confusion = np.zeros((2, 2), dtype=np.int64) if classifier else None
    test_sample, train_sample = Sample(), Sample()
    test_rows, train_rows = plot_rows(test.rows), plot_rows(train.rows)
    first = 0
    with TableWriter(outputs_path, test.offsets[1]) as writer:  # row groups as in the test file
        for columns in test:
            raw = np.column_stack([columns[name] for name in features.names])
            y = columns[features.target]
            outputs = predict_outputs(model, features.scale(raw).astype(np.float32), device)
            writer.append(arrow_table({OUTPUT_COLUMN: outputs}))
            metrics.add(y, outputs)
            if confusion is not None:
                np.add.at(confusion, (y.astype(np.int64), (outputs > 0).astype(np.int64)), 1)
            # The figure's x is the raw feature, as the course plots it.
            test_sample.take(first, test_rows, raw[:, 0], y, outputs)
            first += len(y)
    first = 0
    for columns in train:
        target = columns[features.target]
        train_sample.take(first, train_rows, columns[features.names[0]], target)
        first += len(target)
    k = len(features.names)
    result = metrics.result()
    train_chunks = lambda: scaled_chunks(train, features)  # noqa: E731
    test_chunks = lambda: scaled_chunks(test, features)  # noqa: E731
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
    return Evaluation(result, test_sample, train_sample, confusion)


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
