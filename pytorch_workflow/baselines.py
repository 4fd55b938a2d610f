"""What the best linear model reaches on the same split: the trained model's references.

Regression: the least-squares fit in closed form. Binary classification: L2-regularised
logistic regression (penalty 0.5 * |w|^2 on the sum of the log losses, intercept unpenalised:
the common default, C = 1), fitted by Newton's method. Both are fitted in float64 on the
features the model sees, chunk by chunk, so memory stays flat however many rows there are. The
small (k+1) x (k+1) systems are solved by Gaussian elimination in plain Python floats, in a
fixed order: the same bits on every machine, where LAPACK's result depends on its kernel.
"""

import math
from collections.abc import Callable, Iterable

import numpy as np

from pytorch_workflow.metrics import ClassificationMetrics, RegressionMetrics, sigmoid, softplus

# Chunks of (standardised features (n, k) float32, targets (n,) float32).
Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]

# A pivot this small, relative to the largest diagonal entry, means a feature that is constant
# or a combination of others on the train split: its coefficient is left at 0.
_DEPENDENT = 1e-10
# Differences below the float32 resolution of the targets are rounding, not fit.
_FLOAT32_RESOLUTION = 2.0**-23


def solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """x with matrix @ x = rhs: Gaussian elimination with partial pivoting, in a fixed order."""
    size = len(rhs)
    rows = [[*map(float, matrix[i]), float(rhs[i])] for i in range(size)]
    largest = max(abs(rows[i][i]) for i in range(size)) or 1.0
    pivots: list[int] = []
    for column in range(size):
        top = len(pivots)
        if top == size:
            break
        best = max(range(top, size), key=lambda row: abs(rows[row][column]))
        if abs(rows[best][column]) <= _DEPENDENT * largest:
            continue
        rows[top], rows[best] = rows[best], rows[top]
        for row in range(top + 1, size):
            factor = rows[row][column] / rows[top][column]
            if factor != 0.0:
                for entry in range(column, size + 1):
                    rows[row][entry] -= factor * rows[top][entry]
        pivots.append(column)
    solution = [0.0] * size
    for place in reversed(range(len(pivots))):
        column = pivots[place]
        remainder = rows[place][size]
        for entry in range(column + 1, size):
            remainder -= rows[place][entry] * solution[entry]
        solution[column] = remainder / rows[place][column]
    return solution


def _design(X: np.ndarray) -> list[np.ndarray]:
    """The columns of [X, 1] in float64."""
    return [np.asarray(X[:, j], dtype=np.float64) for j in range(X.shape[1])] + [
        np.ones(X.shape[0])
    ]


def linear_outputs(coefficients: list[float], X: np.ndarray) -> np.ndarray:
    """intercept + sum of coefficient * feature, feature by feature, in float64."""
    output = np.full(X.shape[0], coefficients[-1])
    for j in range(X.shape[1]):
        output = output + coefficients[j] * np.asarray(X[:, j], dtype=np.float64)
    return output


def _weighted_gram(
    columns: list[np.ndarray], weights: np.ndarray | None, gram: list[list[float]]
) -> None:
    """gram[i][j] += sum(w * c_i * c_j) for i <= j (mirrored), each sum pairwise in numpy."""
    for i, left in enumerate(columns):
        weighted = left if weights is None else weights * left
        for j in range(i, len(columns)):
            gram[i][j] += float(np.sum(weighted * columns[j]))
            gram[j][i] = gram[i][j]


def least_squares(train: Chunks, features: int) -> list[float]:
    """The closed-form least-squares coefficients (features..., intercept) on the train split."""
    size = features + 1
    gram = [[0.0] * size for _ in range(size)]
    moment = [0.0] * size
    for X, y in train():
        columns = _design(X)
        _weighted_gram(columns, None, gram)
        target = np.asarray(y, dtype=np.float64)
        for i, column in enumerate(columns):
            moment[i] += float(np.sum(column * target))
    return solve(gram, moment)


def closed_form_metrics(train: Chunks, test: Chunks, features: int) -> dict[str, float | None]:
    """The closed-form fit's test MAE, MSE and R².

    On a line without noise the fit is exact and its errors are the float32 rounding of the
    targets (about 1e-8): those are reported as an exact fit, MSE and MAE 0 and R² 1.
    """
    coefficients = least_squares(train, features)
    metrics = RegressionMetrics()
    for X, y in test():
        metrics.add(y, linear_outputs(coefficients, X))
    mean_square = metrics.target_m2 / metrics.count + metrics.target_mean**2
    if math.sqrt(metrics.mse) <= _FLOAT32_RESOLUTION * math.sqrt(mean_square):
        return {"mae": 0.0, "mse": 0.0, "r2": 1.0}
    result = metrics.result()
    return {name: result[name] for name in ("mae", "mse", "r2")}


def logistic_regression(train: Chunks, features: int, penalty: float = 1.0) -> list[float]:
    """L2-regularised logistic regression coefficients (features..., intercept), by Newton.

    A step that does not lower the objective is halved, so the fit converges from zero
    even on separable data.
    """
    size = features + 1
    weights = [0.0] * size
    previous: tuple[list[float], float, list[float]] | None = None
    shrink = 1.0
    for _ in range(200):
        objective = 0.5 * penalty * sum(w * w for w in weights[:features])
        gradient = [penalty * w for w in weights[:features]] + [0.0]
        hessian = [[0.0] * size for _ in range(size)]
        for j in range(features):
            hessian[j][j] = penalty
        for X, y in train():
            columns = _design(X)
            target = np.asarray(y, dtype=np.float64)
            logits = linear_outputs(weights, X)
            probability = sigmoid(logits)
            residual = probability - target
            objective += float(np.sum(softplus(logits) - target * logits))
            for i, column in enumerate(columns):
                gradient[i] += float(np.sum(residual * column))
            _weighted_gram(columns, probability * (1.0 - probability), hessian)
        if previous is not None and objective > previous[1]:
            shrink /= 2.0
            if shrink < 1e-6:
                return previous[0]
            weights = [w - shrink * s for w, s in zip(previous[0], previous[2], strict=True)]
            continue
        step = solve(hessian, gradient)
        previous, shrink = (weights, objective, step), 1.0
        if max(abs(s) for s in step) <= 1e-10 * (1.0 + max(abs(w) for w in weights)):
            return weights
        weights = [w - s for w, s in zip(weights, step, strict=True)]
    return weights


def logistic_metrics(train: Chunks, test: Chunks, features: int) -> dict[str, float | None]:
    """The logistic baseline's test accuracy and log loss."""
    coefficients = logistic_regression(train, features)
    metrics = ClassificationMetrics()
    for X, y in test():
        metrics.add(y, linear_outputs(coefficients, X))
    return {"accuracy": metrics.accuracy, "log_loss": metrics.log_loss}
