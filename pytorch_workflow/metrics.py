"""Metrics on the test split, computed in float64 from float32 model outputs."""

import math

import numpy as np


def _finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    # JSON has no NaN or infinity, and DVC's renderers break on them.
    return {name: value if math.isfinite(value) else None for name, value in metrics.items()}


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE, MSE, RMSE, R² and the largest absolute error (None where a value is not finite)."""
    actual = np.asarray(actual, dtype=np.float64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if actual.shape != predicted.shape or actual.size == 0:
        raise ValueError(f"need equal, non-empty arrays, got {actual.shape} and {predicted.shape}")
    error = predicted - actual
    mse = float(np.mean(error**2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    residual = float(np.sum(error**2))
    # R² is undefined for a constant target.
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else float("nan"))
    return _finite_or_none(
        {
            "mae": float(np.mean(np.abs(error))),
            "mse": mse,
            "rmse": math.sqrt(mse),
            "r2": r2,
            "max_abs_error": float(np.max(np.abs(error))),
        }
    )


def sigmoid(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -logits))


def classification_metrics(actual: np.ndarray, logits: np.ndarray) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 (positive class 1, threshold 0.5) and log loss."""
    actual = np.asarray(actual, dtype=np.float64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if actual.shape != logits.shape or actual.size == 0:
        raise ValueError(f"need equal, non-empty arrays, got {actual.shape} and {logits.shape}")
    predicted = (logits > 0).astype(np.float64)  # sigmoid(z) > 0.5 exactly when z > 0
    true_positive = float(np.sum((predicted == 1) & (actual == 1)))
    predicted_positive = float(np.sum(predicted == 1))
    actual_positive = float(np.sum(actual == 1))
    precision = true_positive / predicted_positive if predicted_positive else 0.0
    recall = true_positive / actual_positive if actual_positive else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # -log sigmoid(z) for class 1 and -log(1 - sigmoid(z)) for class 0, without overflow.
    log_loss = float(np.mean(np.logaddexp(0.0, logits) - actual * logits))
    return _finite_or_none(
        {
            "accuracy": float(np.mean(predicted == actual)),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "log_loss": log_loss,
        }
    )


def closed_form_predictions(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, chunk_rows: int = 1 << 20
) -> np.ndarray:
    """Predictions of the least-squares line fitted in closed form on the train split.

    No linear model can have a lower training MSE, so its test metrics show how far
    gradient descent is from the optimum. The normal equations are summed in float64 a chunk
    of rows at a time, so memory stays flat however many rows there are.
    """
    features = X_train.shape[1]
    gram = np.zeros((features + 1, features + 1))
    moment = np.zeros(features + 1)
    for start in range(0, len(X_train), chunk_rows):
        design = _with_intercept(X_train[start : start + chunk_rows])
        gram += design.T @ design
        moment += design.T @ np.asarray(y_train[start : start + chunk_rows], np.float64)
    # lstsq rather than solve: a constant or duplicated feature makes the system singular.
    coefficients, *_ = np.linalg.lstsq(gram, moment, rcond=None)
    return np.concatenate(
        [
            _with_intercept(X_test[start : start + chunk_rows]) @ coefficients
            for start in range(0, len(X_test), chunk_rows)
        ]
    )


def _with_intercept(X: np.ndarray) -> np.ndarray:
    return np.column_stack([np.asarray(X, np.float64), np.ones(len(X))])
