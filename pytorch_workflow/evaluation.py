"""Evaluate a trained model on the test split, chunk by chunk: metrics, plot tables, figure data."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pytorch_workflow import baselines
from pytorch_workflow.data_setup import Features, SplitTable, output_columns
from pytorch_workflow.metrics import binary_class, metrics_for, sigmoid, softmax
from pytorch_workflow.params import CLASSIFICATION, MULTICLASS, Options
from pytorch_workflow.tables import TableWriter, arrow_table

# Plot tables and scatter plots show at most this many points, whatever the data's size.
MAX_PLOT_POINTS = 2000
# A model whose test loss is more than this many times its linear baseline's does worse than a
# straight line fitted to the same split: usually a training that has not got anywhere yet.
FAR_WORSE_THAN_BASELINE = 2.0


class BaselineRecord(NamedTuple):
    """Where metrics/evaluate.json records a linear baseline, and how a note names it."""

    key: str  # the baseline's metrics
    loss: str  # the loss the model is compared on
    ratio: str  # the model's loss over the baseline's
    loss_name: str
    whose: str


CLOSED_FORM = BaselineRecord(
    "closed_form", "mse", "mse_over_closed_form", "MSE", "the least-squares fit's"
)
LOGISTIC_BASELINE = BaselineRecord(
    "logistic_baseline", "log_loss", "log_loss_over_baseline", "log loss", "the logistic baseline's"
)


def plot_rows(rows: int) -> np.ndarray:
    """At most MAX_PLOT_POINTS row numbers, evenly spaced: every row of a small split."""
    shown = min(rows, MAX_PLOT_POINTS)
    return np.unique(np.arange(shown, dtype=np.int64) * rows // shown)


@dataclass
class Sample:
    """The rows of a split that are plotted: raw first two features, target, the model's output."""

    rows: np.ndarray  # which rows, from `plot_rows`
    # the rows' first two raw features, targets, and outputs (n,) or (n, classes)
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


def take_plotted(sample: Sample, columns: dict[str, np.ndarray], features: Features) -> None:
    """A chunk's plotted rows: the raw first two features, as the course plots them."""
    raw = np.column_stack([columns[name] for name in features.names[:2]])
    sample.take(raw, columns[features.target])


def scaled_chunks(
    table: SplitTable, features: Features, sample: Sample
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(standardised X (n, k), y (n,)) for each chunk of a split: float32, and a multi-class
    target as class indices. A pass that finds `sample` empty (the first) also fills it with
    the split's plotted rows: the baseline's fit reads the train split anyway."""
    sample_empty = sample.seen == 0
    for columns in table:
        if sample_empty:
            take_plotted(sample, columns, features)
        labels = columns[features.target]
        yield (
            features.matrix(columns),
            (features.class_indices(labels) if features.classes else labels),
        )


def evaluate(
    model: nn.Module,
    train: SplitTable,
    test: SplitTable,
    features: Features,
    task: str,
    device: torch.device,
    outputs_path: Path,
) -> Evaluation:
    """Metrics of the model and of the linear baseline; the model's raw test outputs (values or
    logits) are written to `outputs_path` as they are computed.

    The baseline is fitted first, its first pass over the train split taking the plotted train
    rows; then one pass over the test split scores the model and the baseline together.
    """
    classifier = task in (CLASSIFICATION, MULTICLASS)
    metrics = metrics_for(task, features.outputs)
    test_sample, train_sample = Sample(plot_rows(test.rows)), Sample(plot_rows(train.rows))
    train_chunks = partial(scaled_chunks, train, features, train_sample)
    baseline = baselines.Baseline(task, train_chunks, len(features.names), features.outputs)
    if train_sample.seen == 0:  # a baseline left out reads no row
        for columns in train:
            take_plotted(train_sample, columns, features)
    columns_out = output_columns(features.outputs)
    model.eval()
    with TableWriter(outputs_path, None) as writer:  # a row group for each chunk of the split
        for columns in test:
            raw = np.column_stack([columns[name] for name in features.names])
            y = columns[features.target]
            X = np.ascontiguousarray(features.scale(raw).astype(np.float32))
            with torch.inference_mode():  # as in the course
                outputs = model(torch.from_numpy(X).to(device)).cpu().numpy()
            outputs = outputs.reshape(len(X), -1) if features.classes else outputs.reshape(-1)
            by_column = outputs.T if features.classes else [outputs]
            writer.append(arrow_table(dict(zip(columns_out, by_column, strict=True))))
            targets = features.class_indices(y) if features.classes else y
            metrics.add(targets, outputs)
            baseline.add(targets, X)
            # The figures show the raw features, as the course plots them.
            test_sample.take(raw[:, :2], y, outputs)
    result = metrics.result()
    record = LOGISTIC_BASELINE if classifier else CLOSED_FORM
    result[record.key] = baseline.result()
    if result[record.loss] is not None and result[record.key][record.loss]:
        result[record.ratio] = result[record.loss] / result[record.key][record.loss]
    return Evaluation(result, test_sample, train_sample, metrics.confusion if classifier else None)


def baseline_note(
    metrics: dict, standardized: bool = False, loss_options: Options | None = None
) -> str | None:
    """A note when the model's test loss is far above its linear baseline's; else None."""
    for record in (CLOSED_FORM, LOGISTIC_BASELINE):
        ratio = metrics.get(record.ratio)
        if ratio is not None and ratio > FAR_WORSE_THAN_BASELINE:
            params = "train.lr, train.optimizer and train.epochs"
            other_loss = (
                f"; train.loss_options ({', '.join(loss_options)}) also train it for another "
                f"loss than the {record.loss_name}"
                if loss_options
                else ""
            )
            return (
                f"the model's test {record.loss_name} is {ratio:.3g} times {record.whose} "
                f"({record.ratio}), the best linear model's on the same split: see "
                f"{params if standardized else 'data.standardize, ' + params} (recipes that "
                f"reach it: docs/own-data.md){other_loss}"
            )
    return None


def prediction_table(
    evaluation: Evaluation, features: Features, task: str
) -> dict[str, np.ndarray]:
    """The test sample for `dvc plots`: actual against predicted (and the probability)."""
    x, actual, outputs = evaluation.test.arrays()
    if task == MULTICLASS:
        probabilities = softmax(outputs)
        return {
            "actual": actual.astype(np.int64),
            "predicted": class_of(outputs, features),
            "probability": np.max(probabilities, axis=1),
        }
    if task == CLASSIFICATION:
        return {
            "actual": actual.astype(np.int64),
            "predicted": class_of(outputs, features),
            "probability": sigmoid(outputs),
        }
    table = {"actual": actual, "predicted": outputs}
    if len(features.names) == 1:
        table = {features.names[0]: x[:, 0], **table}
    return table


def class_of(outputs: np.ndarray, features: Features) -> np.ndarray:
    """A classifier's class for each row of its outputs: the label of the largest of a
    multi-class model's logits, or 1 where a binary model's logit is above 0."""
    if features.classes:
        return np.asarray(features.classes)[np.argmax(outputs, axis=1)].astype(np.int64)
    return binary_class(outputs)


def predicted_classes(
    model: nn.Module, features: Features, device: torch.device, raw: np.ndarray
) -> np.ndarray:
    """A classifier's class for each row of raw features, as `prediction_table` gives it: for
    the course's `plot_decision_boundary`."""
    X = np.ascontiguousarray(features.scale(raw.astype(np.float32)), dtype=np.float32)
    with torch.inference_mode():
        outputs = model(torch.from_numpy(X).to(device)).cpu().numpy()
    return class_of(outputs, features)
