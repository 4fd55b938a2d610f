"""The course's pictures (`plot_predictions`, the loss curves) and the tables `dvc plots` draws."""

import csv
import io
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pytorch_workflow.data_setup import class_name
from pytorch_workflow.errors import UserError
from pytorch_workflow.files import atomic_write_bytes, atomic_write_text

LOSS_COLUMNS = ("epoch", "train_loss", "test_loss")
# A confusion matrix of more classes shows colours only: no counts, no tick labels.
MAX_LABELLED_CLASSES = 20
# A classifier's loss table adds these.
ACCURACY_COLUMNS = ("train_accuracy", "test_accuracy")


def write_table(path: str | Path, columns: dict[str, np.ndarray]) -> None:
    """A small table as CSV for `dvc plots`; every number as its shortest exact text."""
    texts = [shortest_texts(values) for values in columns.values()]
    lines = [",".join(columns), *(",".join(row) for row in zip(*texts, strict=True))]
    atomic_write_text(path, "\n".join(lines) + "\n")


def shortest_texts(values: np.ndarray) -> list[str]:
    """Each number as the shortest text that reads back as the same value of its dtype."""
    if values.dtype == np.float32:
        return [str(np.float32(value)) for value in values.tolist()]
    return [repr(value) for value in values.tolist()]


def read_loss_table(path: str | Path) -> dict[str, np.ndarray]:
    """`plots/loss.csv` from the train stage, checked: its columns, and finite numbers."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run `dvc repro` to make it") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: not a readable loss table ({error})") from None
    header = tuple(rows[0]) if rows else ()
    if header not in (LOSS_COLUMNS, LOSS_COLUMNS + ACCURACY_COLUMNS) or len(rows) < 2:
        raise UserError(
            f"{path}: expected the columns {','.join(LOSS_COLUMNS)} (and, for a classifier, "
            f"{','.join(ACCURACY_COLUMNS)}) and a row per epoch"
        )
    values: list[list[float]] = []
    for number, row in enumerate(rows[1:], start=1):
        try:
            parsed = [float(cell) for cell in row]
        except ValueError:
            parsed = []
        if len(parsed) != len(header) or not all(map(math.isfinite, parsed)):
            raise UserError(
                f"{path}: row {number} is not {len(header)} finite numbers: {','.join(row)[:80]}"
            )
        values.append(parsed)
    table = np.array(values)
    return {name: table[:, i] for i, name in enumerate(header)}


@contextmanager
def _figure(path: str | Path, figsize: tuple[int, int] = (10, 7)) -> Iterator[Any]:
    """A new figure to draw on through the `pyplot` yielded, then written to `path` as a PNG."""
    # Imported here so that only the stages that draw pay for matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=figsize)
    try:
        yield plt
        buffer = io.BytesIO()
        # No software version in the file: the same figure gives the same bytes.
        figure.savefig(buffer, format="png", dpi=72, metadata={"Software": None})
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_predictions(
    path: str | Path,
    train_data: np.ndarray,
    train_labels: np.ndarray,
    test_data: np.ndarray,
    test_labels: np.ndarray,
    predictions: np.ndarray | None = None,
) -> None:
    """Training data in blue, test data in green, predictions in red (the course's figure)."""
    with _figure(path) as plt:
        plt.scatter(train_data, train_labels, c="b", s=4, label="Training data")
        plt.scatter(test_data, test_labels, c="g", s=4, label="Testing data")
        if predictions is not None:
            plt.scatter(test_data, predictions, c="r", s=4, label="Predictions")
        plt.legend(prop={"size": 14})


def plot_loss_curves(path: str | Path, losses: dict[str, np.ndarray]) -> None:
    """The course's loss curves; a classifier's accuracy curves beside them."""
    panels = [("loss", "Loss")]
    if "train_accuracy" in losses:
        panels.append(("accuracy", "Accuracy"))
    with _figure(path, figsize=(10, 7) if len(panels) == 1 else (15, 7)) as plt:
        for number, (name, title) in enumerate(panels, start=1):
            plt.subplot(1, len(panels), number)
            plt.plot(losses["epoch"], losses[f"train_{name}"], label=f"Train {name}")
            plt.plot(losses["epoch"], losses[f"test_{name}"], label=f"Test {name}")
            plt.title(title if len(panels) > 1 else "Training and test loss curves")
            plt.ylabel(title)
            plt.xlabel("Epochs")
            plt.legend()


def plot_predicted_vs_actual(path: str | Path, actual: np.ndarray, predicted: np.ndarray) -> None:
    """For k features: each test point's prediction against its target, and the ideal line."""
    with _figure(path) as plt:
        plt.scatter(actual, predicted, c="r", s=4, label="Predictions")
        low, high = float(np.min(actual)), float(np.max(actual))
        plt.plot([low, high], [low, high], c="g", label="Perfect predictions")
        plt.xlabel("Actual")
        plt.ylabel("Predicted")
        plt.legend(prop={"size": 14})


def plot_confusion_matrix(
    path: str | Path, counts: np.ndarray, labels: list[str] | None = None
) -> None:
    """Counts of each (actual, predicted) pair of classes, over the whole test split."""
    with _figure(path, figsize=(6, 5)) as plt:
        _draw_confusion(plt, counts, labels)


def _draw_confusion(plt: Any, counts: np.ndarray, labels: list[str] | None) -> None:
    classes = range(counts.shape[0])
    labels = labels or [str(label) for label in classes]
    plt.imshow(counts, cmap="Blues")
    if len(classes) <= MAX_LABELLED_CLASSES:  # beyond, the colours alone stay readable
        for row in classes:
            for column in classes:
                text = str(counts[row, column])
                plt.text(column, row, text, ha="center", va="center", size=16)
        plt.xticks(list(classes), labels)
        plt.yticks(list(classes), labels)
    plt.xlabel("Predicted")
    plt.ylabel("Actual")
    plt.title("Confusion matrix (test split)")


# The grid of `plot_decision_boundary`: points per axis, and the margin around the data.
BOUNDARY_GRID = 101
BOUNDARY_MARGIN = 0.1


def plot_decision_boundary(
    path: str | Path,
    classify: Callable[[np.ndarray], np.ndarray],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    confusion: np.ndarray | None = None,
    labels: list[str] | None = None,
) -> None:
    """The course's `plot_decision_boundary`, train and test side by side: the classes that
    `classify` gives on a grid over two features, and each split's points coloured by class;
    with `confusion`, the test split's confusion matrix beside them."""
    points = np.concatenate([X for X, _ in splits.values()])
    low, high = points.min(axis=0) - BOUNDARY_MARGIN, points.max(axis=0) + BOUNDARY_MARGIN
    xx, yy = np.meshgrid(*(np.linspace(low[i], high[i], BOUNDARY_GRID) for i in (0, 1)))
    regions = classify(np.column_stack((xx.ravel(), yy.ravel()))).reshape(xx.shape)
    # One colour scale for the regions and the points, whichever classes each shows.
    shown = np.concatenate([regions.ravel(), *(y for _, y in splits.values())])
    scale = {"vmin": shown.min(), "vmax": shown.max(), "cmap": "RdYlBu"}
    panels = len(splits) + (confusion is not None)
    with _figure(path, figsize=(6 * panels, 6)) as plt:
        if confusion is not None:
            plt.subplot(1, panels, panels)
            _draw_confusion(plt, confusion, labels)
        for number, (name, (X, y)) in enumerate(splits.items(), start=1):
            plt.subplot(1, panels, number)
            plt.title(name)
            plt.contourf(xx, yy, regions, alpha=0.7, **scale)
            plt.scatter(X[:, 0], X[:, 1], c=y, s=40, **scale)
            plt.xlim(xx.min(), xx.max())
            plt.ylim(yy.min(), yy.max())


def draw_evaluation(
    path: str | Path,
    evaluation,
    features,
    table: dict[str, np.ndarray],
    classify: Callable[[np.ndarray], np.ndarray],
) -> None:
    """The course's picture of what the model learned: `plot_predictions` for one feature,
    `plot_decision_boundary` (and the confusion matrix) for a classifier of two; otherwise
    what fits the task."""
    train_x, train_y, _ = evaluation.train.arrays()
    test_x, test_y, outputs = evaluation.test.arrays()
    labels = [class_name(label) for label in features.classes] if features.classes else None
    if evaluation.confusion is not None and len(features.names) == 2:
        splits = {"Train": (train_x, train_y), "Test": (test_x, test_y)}
        plot_decision_boundary(path, classify, splits, evaluation.confusion, labels)
    elif evaluation.confusion is not None:
        plot_confusion_matrix(path, evaluation.confusion, labels)
    elif len(features.names) == 1:
        plot_predictions(path, train_x[:, 0], train_y, test_x[:, 0], test_y, predictions=outputs)
    else:
        plot_predicted_vs_actual(path, table["actual"], table["predicted"])
