"""Test metrics, accumulated chunk by chunk in float64.

Sums are numpy's (pairwise within a chunk, chunk after chunk), and the sigmoid and softplus are
numpy's ufuncs: the same bytes on the same machine. On another CPU numpy's `exp` and `log` may
take another SIMD path, so a log loss can differ in its last bits.

Not torchmetrics (the course's library in chapter 02): its `R2Score` (1.9.0) gives 1.0 for an R²
of 0.97 when the targets span 0.01 (an absolute tolerance of 1e-4 on its sums), and more than 1
for targets far from zero (Lightning-AI/torchmetrics#3077, open); it has no log loss. R² here
merges each chunk's mean and squared deviations (Chan's method) instead.
"""

import math

import numpy as np

from pytorch_workflow.params import CLASSIFICATION, MULTICLASS


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The probability of class 1 for each logit, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    # e**-|z| never overflows, and each branch divides without cancellation for its sign of z.
    small = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


def binary_class(logits: np.ndarray) -> np.ndarray:
    """A binary classifier's class for each logit: 1 where its probability passes 0.5, which
    is exactly where the logit passes 0."""
    return (np.asarray(logits).reshape(-1) > 0).astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Each row's class probabilities from its logits (n, classes), in float64."""
    z = np.asarray(logits, dtype=np.float64)
    return np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))


def softplus(logits: np.ndarray) -> np.ndarray:
    """log(1 + e**z) for each logit, in float64, without overflow for a large z."""
    return np.logaddexp(0.0, np.asarray(logits, dtype=np.float64))


def _finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    # JSON has no NaN or infinity, and DVC's renderers break on them.
    return {name: value if math.isfinite(value) else None for name, value in metrics.items()}


class RegressionMetrics:
    """MAE, MSE, R² and the largest absolute error over chunks of (actual, predicted)."""

    def __init__(self) -> None:
        self.count = 0
        self.sum_abs = 0.0
        self.sum_squares = 0.0
        self.max_abs = 0.0
        self.target_mean = 0.0
        self.target_m2 = 0.0  # sum of squared deviations from the mean, merged per chunk

    def add(self, actual: np.ndarray, predicted: np.ndarray) -> None:
        actual = np.asarray(actual, dtype=np.float64).reshape(-1)
        error = np.asarray(predicted, dtype=np.float64).reshape(-1) - actual
        if actual.size == 0:
            return
        self.sum_abs += float(np.sum(np.abs(error)))
        self.sum_squares += float(np.sum(error * error))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(error))))
        mean = float(np.mean(actual))
        m2 = float(np.sum(np.square(actual - mean)))
        total = self.count + actual.size
        delta = mean - self.target_mean
        self.target_mean += delta * (actual.size / total)
        self.target_m2 += m2 + delta * delta * (self.count * actual.size / total)
        self.count = total

    @property
    def mse(self) -> float:
        return self.sum_squares / self.count

    def result(self) -> dict[str, float | None]:
        # R² is undefined for a constant target.
        if self.target_m2 > 0:
            r2 = 1.0 - self.sum_squares / self.target_m2
        else:
            r2 = 1.0 if self.sum_squares == 0 else math.nan
        return _finite_or_none(
            {
                "mae": self.sum_abs / self.count,
                "mse": self.mse,
                "r2": r2,
                "max_abs_error": self.max_abs,
            }
        )


class ClassificationMetrics:
    """Accuracy, precision, recall, F1 (class 1, threshold 0.5) and log loss over chunks."""

    def __init__(self, classes: int = 2) -> None:
        self.count = 0
        self.confusion = np.zeros((classes, classes), dtype=np.int64)  # counts[actual, predicted]
        self.sum_log_loss = 0.0

    def add(self, actual: np.ndarray, logits: np.ndarray) -> None:
        actual = np.asarray(actual, dtype=np.float64).reshape(-1)
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        predicted = binary_class(logits)
        self.count += actual.size
        self.confusion += np.bincount(2 * (actual == 1) + predicted, minlength=4).reshape(2, 2)
        # -log sigmoid(z) for class 1 and -log(1 - sigmoid(z)) for class 0.
        self.sum_log_loss += float(np.sum(softplus(logits) - actual * logits))

    @property
    def accuracy(self) -> float:
        return int(np.trace(self.confusion)) / self.count

    @property
    def log_loss(self) -> float:
        return self.sum_log_loss / self.count

    def result(self) -> dict[str, float | None]:
        (_, false_positive), (false_negative, tp) = self.confusion.tolist()
        precision = tp / (tp + false_positive) if tp + false_positive else 0.0
        recall = tp / (tp + false_negative) if tp + false_negative else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return _finite_or_none(
            {
                "accuracy": self.accuracy,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "log_loss": self.log_loss,
            }
        )


class MulticlassMetrics(ClassificationMetrics):
    """Accuracy, macro-averaged precision, recall and F1, and log loss over chunks of (class
    index, one logit per class)."""

    def add(self, actual: np.ndarray, logits: np.ndarray) -> None:
        actual = np.asarray(actual, dtype=np.int64).reshape(-1)
        logits = np.asarray(logits, dtype=np.float64)
        classes = self.confusion.shape[0]
        predicted = np.argmax(logits, axis=1)
        self.count += actual.size
        pairs = np.bincount(classes * actual + predicted, minlength=classes * classes)
        self.confusion += pairs.reshape(classes, classes)
        # -log softmax(z)[y] = logsumexp(z) - z[y]
        chosen = np.take_along_axis(logits, actual[:, None], axis=1)[:, 0]
        self.sum_log_loss += float(np.sum(np.logaddexp.reduce(logits, axis=1) - chosen))

    def result(self) -> dict[str, float | None]:
        right = np.diagonal(self.confusion).astype(np.float64)
        predicted, actual = self.confusion.sum(axis=0), self.confusion.sum(axis=1)
        # Averaged over the classes the test split has or the model predicts (scikit-learn's
        # macro average): a class of train that neither shows does not count as a 0.
        seen = (predicted + actual) > 0
        right, predicted, actual = right[seen], predicted[seen], actual[seen]
        with np.errstate(invalid="ignore", divide="ignore"):  # a class never predicted: 0
            precision = np.where(predicted > 0, right / predicted, 0.0)
            recall = np.where(actual > 0, right / actual, 0.0)
            both = precision + recall
            f1 = np.where(both > 0, 2 * precision * recall / both, 0.0)
        return _finite_or_none(
            {
                "accuracy": self.accuracy,
                "precision": float(np.mean(precision)),
                "recall": float(np.mean(recall)),
                "f1": float(np.mean(f1)),
                "log_loss": self.log_loss,
            }
        )


def metrics_for(task: str, outputs: int) -> RegressionMetrics | ClassificationMetrics:
    """The test metrics of a task, empty: `outputs` is the model's, one per class of several."""
    if task == MULTICLASS:
        return MulticlassMetrics(outputs)
    return ClassificationMetrics() if task == CLASSIFICATION else RegressionMetrics()
