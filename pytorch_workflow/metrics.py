"""Regression metrics on the test split, computed in float64 from float32 predictions."""

import math

import numpy as np


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
    # R² is undefined for a constant target; 0 would claim "no better than the mean".
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else float("-inf"))
    metrics = {
        "mae": float(np.mean(np.abs(error))),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": r2,
        "max_abs_error": float(np.max(np.abs(error))),
    }
    return {name: value if math.isfinite(value) else None for name, value in metrics.items()}
