"""The course's pictures: `plot_predictions` and the loss curves, as byte-stable PNG files."""

import io
from pathlib import Path

import numpy as np

from pytorch_workflow.files import atomic_write_bytes


def _pyplot():
    # Imported here so that only the stages that draw pay for matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_predictions(
    path: str | Path,
    train_data: np.ndarray,
    train_labels: np.ndarray,
    test_data: np.ndarray,
    test_labels: np.ndarray,
    predictions: np.ndarray | None = None,
) -> None:
    """Training data in blue, test data in green, predictions in red (the course's figure)."""
    plt = _pyplot()
    figure = plt.figure(figsize=(10, 7))
    plt.scatter(train_data, train_labels, c="b", s=4, label="Training data")
    plt.scatter(test_data, test_labels, c="g", s=4, label="Testing data")
    if predictions is not None:
        plt.scatter(test_data, predictions, c="r", s=4, label="Predictions")
    plt.legend(prop={"size": 14})
    _save(figure, path)


def plot_loss_curves(
    path: str | Path, epochs: np.ndarray, train_loss: np.ndarray, test_loss: np.ndarray
) -> None:
    plt = _pyplot()
    figure = plt.figure(figsize=(10, 7))
    plt.plot(epochs, train_loss, label="Train loss")
    plt.plot(epochs, test_loss, label="Test loss")
    plt.title("Training and test loss curves")
    plt.ylabel("Loss")
    plt.xlabel("Epochs")
    plt.legend()
    _save(figure, path)


def _save(figure, path: str | Path) -> None:
    plt = _pyplot()
    buffer = io.BytesIO()
    # No software version in the file: the same figure gives the same bytes.
    figure.savefig(buffer, format="png", dpi=72, metadata={"Software": None})
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_predicted_vs_actual(path: str | Path, actual: np.ndarray, predicted: np.ndarray) -> None:
    """For k features: each test point's prediction against its target, and the ideal line."""
    plt = _pyplot()
    figure = plt.figure(figsize=(10, 7))
    plt.scatter(actual, predicted, c="r", s=4, label="Predictions")
    low, high = float(np.min(actual)), float(np.max(actual))
    plt.plot([low, high], [low, high], c="g", label="Perfect predictions")
    plt.xlabel("Actual")
    plt.ylabel("Predicted")
    plt.legend(prop={"size": 14})
    _save(figure, path)


def plot_confusion_matrix(path: str | Path, actual: np.ndarray, predicted: np.ndarray) -> None:
    """Counts of each (actual, predicted) pair for a 0/1 target."""
    plt = _pyplot()
    counts = np.zeros((2, 2), dtype=np.int64)
    np.add.at(counts, (np.asarray(actual, np.int64), np.asarray(predicted, np.int64)), 1)
    figure = plt.figure(figsize=(6, 5))
    plt.imshow(counts, cmap="Blues")
    for row in range(2):
        for column in range(2):
            plt.text(column, row, str(counts[row, column]), ha="center", va="center", size=16)
    plt.xticks([0, 1])
    plt.yticks([0, 1])
    plt.xlabel("Predicted")
    plt.ylabel("Actual")
    plt.title("Confusion matrix (test split)")
    _save(figure, path)
