"""What the best linear model reaches on the same split: the trained model's references.

Regression: the least-squares fit in closed form. Classification: L2-regularised logistic
regression, binary or multinomial (penalty 0.5 * |w|^2 on the sum of the log losses, intercepts
unpenalised: the common default, C = 1), fitted by Newton's method. All are fitted in float64
on the features the model sees, block by block, so memory stays flat however many rows there
are, and their normal equations are solved by numpy's LAPACK.

BLAS and LAPACK pick their kernels per CPU, and a kernel fixes the order of its sums, so a
baseline's last bits can differ between machines: relatively, by about the condition number of
its normal equations times 1e-16. Its MAE, MSE, R² and log loss are therefore recorded to
SIGNIFICANT_DIGITS = 10 significant digits: far finer than any use made of them (the model's
metric over the baseline's), and coarse enough that the kernels' differences stay below the
last digit up to a condition number of about 1e5. A rounded value is the same bytes on every
machine unless the exact one lies within that difference of a rounding boundary: a chance of
about the condition number times 1e-6 per value. Accuracy is a ratio of counts and is left as
it is: it changes only if a test row's logit is within rounding of 0.
"""

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from pytorch_workflow.metrics import RegressionMetrics, metrics_for, sigmoid, softplus
from pytorch_workflow.params import CLASSIFICATION, MULTICLASS

# Chunks of (standardised features (n, k) float32, targets (n,) float32).
Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]

SIGNIFICANT_DIGITS = 10
# A feature whose variance, relative to its own, is explained by the others up to this fraction
# is constant or a combination of others on the train split: it adds no direction to the fit.
_DEPENDENT = 1e-10
# Differences below the float32 resolution of the targets are rounding, not fit.
_FLOAT32_RESOLUTION = 2.0**-23
# Each baseline solves a dense system of `unknowns(...)` unknowns (the Newton baselines about ten
# times), in O(unknowns³) time and O(unknowns²) memory: beyond this many it is left out (null)
# rather than cost many times the training (measured in docs/scale.md).
MAX_BASELINE_UNKNOWNS = 2000
# float64 values per block of rows: the float64 copies of a wide chunk stay at 32 MiB each.
_BLOCK_VALUES = 2**22


def unknowns(features: int, outputs: int) -> int:
    """The size of a baseline's system: a coefficient per feature and an intercept per output."""
    return (features + 1) * outputs


def left_out(features: int, outputs: int) -> bool:
    """Whether a baseline of this size is left out (null): beyond MAX_BASELINE_UNKNOWNS."""
    return unknowns(features, outputs) > MAX_BASELINE_UNKNOWNS


def rounded(metrics: dict[str, float | None]) -> dict[str, float | None]:
    """Each value to SIGNIFICANT_DIGITS significant digits (see the module's docstring)."""
    return {
        name: None if value is None else float(f"{value:.{SIGNIFICANT_DIGITS}g}")
        for name, value in metrics.items()
    }


def solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x with matrix @ x = rhs for a symmetric positive semi-definite matrix.

    A rank-deficient matrix (a constant or duplicated feature) gets the minimum-norm solution of
    the system scaled to a unit diagonal: a constant feature's coefficient is 0, and a duplicated
    feature shares its coefficient equally between its copies.
    """
    matrix, rhs = np.asarray(matrix, dtype=np.float64), np.asarray(rhs, dtype=np.float64)
    # Unit diagonal, so that the threshold is about each feature's share, whatever its scale.
    scale = np.sqrt(np.diagonal(matrix)).copy()
    scale[scale == 0] = 1.0
    scaled = matrix / np.outer(scale, scale)
    try:
        # The squared pivots are each feature's share of variance not explained by the others.
        independent = np.diagonal(np.linalg.cholesky(scaled)).min() ** 2 > _DEPENDENT
    except np.linalg.LinAlgError:
        independent = False
    # Cholesky and LU cost a fraction of the SVD, which only a rank-deficient matrix needs.
    if independent:
        solution = np.linalg.solve(scaled, rhs / scale)
    else:
        solution = np.linalg.lstsq(scaled, rhs / scale, rcond=_DEPENDENT)[0]
    return solution / scale


def _blocks(chunks: Chunks) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(X (n, k), y (n,)) in float64, a bounded number of values at a time."""
    for X, y in chunks():
        rows = max(1, _BLOCK_VALUES // (X.shape[1] + 1))
        for start in range(0, len(y), rows):
            yield (
                np.asarray(X[start : start + rows], dtype=np.float64),
                np.asarray(y[start : start + rows], dtype=np.float64),
            )


def linear_outputs(coefficients: np.ndarray, X: np.ndarray) -> np.ndarray:
    """intercept + X @ coefficients, in float64."""
    return np.asarray(X, dtype=np.float64) @ coefficients[:-1] + coefficients[-1]


def least_squares(train: Chunks, features: int) -> np.ndarray:
    """The closed-form least-squares coefficients (features..., intercept) on the train split.

    The normal equations are those of the centred features (blocks merged by Chan's update): a
    column of ones beside features far from 0 would square their mean-to-spread ratio into the
    condition number, and centring leaves the intercept out of the minimum-norm choice, as
    scikit-learn's LinearRegression does. With fewer train rows than features, the minimum norm
    is that of the features scaled to unit variance (`solve`): scikit-learn's on features as
    they are picks another of the exact fits.
    """
    count, x_mean, y_mean = 0, np.zeros(features), 0.0
    covariance, cross = np.zeros((features, features)), np.zeros(features)
    for X, y in _blocks(train):
        block_x_mean, block_y_mean = X.mean(axis=0), float(y.mean())
        X_centred = X - block_x_mean
        total = count + len(y)
        x_delta, y_delta = block_x_mean - x_mean, block_y_mean - y_mean
        weight = count * len(y) / total
        covariance += X_centred.T @ X_centred + weight * np.outer(x_delta, x_delta)
        cross += X_centred.T @ (y - block_y_mean) + weight * x_delta * y_delta
        x_mean += x_delta * (len(y) / total)
        y_mean += y_delta * (len(y) / total)
        count = total
    coefficients = solve(covariance, cross)
    return np.append(coefficients, y_mean - x_mean @ coefficients)


def _newton(initial: np.ndarray, evaluate: Callable) -> np.ndarray:
    """The minimum of a convex objective by Newton's method from `initial`: `evaluate(weights)`
    gives its (value, gradient, hessian). A step that does not lower the value is halved, so
    the fit converges from zero even on separable data."""
    weights = initial
    previous: tuple[np.ndarray, float, np.ndarray] | None = None
    shrink = 1.0
    for _ in range(200):
        objective, gradient, hessian = evaluate(weights)
        if previous is not None and objective > previous[1]:
            shrink /= 2.0
            if shrink < 1e-6:
                return previous[0]
            weights = previous[0] - shrink * previous[2]
            continue
        step = solve(hessian, gradient)
        previous, shrink = (weights, objective, step), 1.0
        if np.max(np.abs(step)) <= 1e-10 * (1.0 + np.max(np.abs(weights))):
            return weights
        weights = weights - step
    return weights


def logistic_regression(train: Chunks, features: int, penalty: float = 1.0) -> np.ndarray:
    """L2-regularised logistic regression coefficients (features..., intercept), by Newton."""
    penalised = np.append(np.full(features, penalty), 0.0)

    def evaluate(weights: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        objective = 0.5 * float(penalised @ (weights * weights))
        gradient = penalised * weights
        hessian = np.diag(penalised)
        for X, y in _blocks(train):
            design = np.column_stack([X, np.ones(len(y))])
            logits = design @ weights
            probability = sigmoid(logits)
            objective += float(np.sum(softplus(logits) - y * logits))
            gradient += design.T @ (probability - y)
            # A.T @ A of one array is BLAS's symmetric product in numpy: half a general one.
            weighted = design * np.sqrt(probability * (1.0 - probability))[:, None]
            hessian += weighted.T @ weighted
        return objective, gradient, hessian

    return _newton(np.zeros(features + 1), evaluate)


def multinomial_regression(
    train: Chunks, features: int, classes: int, penalty: float = 1.0
) -> np.ndarray:
    """L2-regularised multinomial logistic regression coefficients, (features + 1, classes)
    with the intercepts last, by Newton's method on targets that are class indices.

    The intercepts can all move by one constant without changing a probability: `solve` takes
    the minimum-norm step along that direction.
    """
    size = features + 1
    penalised = np.tile(np.append(np.full(features, penalty), 0.0), classes)

    def evaluate(flat: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        # Class-major: flat[a * size + i] is class a's coefficient of feature i.
        weights = flat.reshape(classes, size).T
        objective = 0.5 * float(penalised @ (flat * flat))
        gradient = (penalised * flat).reshape(classes, size).T
        hessian = np.diag(penalised)
        for X, y in _blocks(train):
            design = np.column_stack([X, np.ones(len(y))])
            logits = design @ weights
            log_norm = np.logaddexp.reduce(logits, axis=1)
            probability = np.exp(logits - log_norm[:, None])
            rows, labels = np.arange(len(y)), y.astype(np.int64)
            objective += float(np.sum(log_norm - logits[rows, labels]))
            probability_minus_target = probability.copy()
            probability_minus_target[rows, labels] -= 1.0
            gradient += design.T @ probability_minus_target
            for a in range(classes):
                for b in range(a, classes):
                    row_weights = probability[:, a] * ((a == b) - probability[:, b])
                    block = (design * row_weights[:, None]).T @ design
                    hessian[a * size : (a + 1) * size, b * size : (b + 1) * size] += block
                    if a != b:
                        hessian[b * size : (b + 1) * size, a * size : (a + 1) * size] += block.T
        return objective, gradient.T.reshape(-1), hessian

    return _newton(np.zeros(size * classes), evaluate).reshape(classes, size).T


class Baseline:
    """The task's linear baseline: fitted on the train split when made, then scored on the test
    split chunk by chunk (`add`), in the same pass over the test rows as the model.

    Left out (null) beyond MAX_BASELINE_UNKNOWNS: then it reads no row at all.
    """

    def __init__(self, task: str, train: Chunks, features: int, outputs: int) -> None:
        self.coefficients: np.ndarray | None = None
        self.metrics = metrics_for(task, outputs)
        if left_out(features, outputs):
            return
        if task == MULTICLASS:
            self.coefficients = multinomial_regression(train, features, outputs)
        elif task == CLASSIFICATION:
            self.coefficients = logistic_regression(train, features)
        else:
            self.coefficients = least_squares(train, features)

    def add(self, y: np.ndarray, X: np.ndarray) -> None:
        """Score a chunk of the test split: standardised features, as the model sees them, and
        targets (class indices for several classes)."""
        if self.coefficients is not None:
            self.metrics.add(y, linear_outputs(self.coefficients, X))

    def result(self) -> dict[str, float | None]:
        """Regression: the test MAE, MSE and R²; classification: the test accuracy and log loss.
        To SIGNIFICANT_DIGITS (accuracy as it is); null where the baseline is left out.

        On a line without noise the closed form is exact and its errors are the float32 rounding
        of the targets (about 1e-8): those are reported as an exact fit, MSE and MAE 0, R² 1.
        """
        metrics = self.metrics
        if isinstance(metrics, RegressionMetrics):
            if self.coefficients is None:
                return {"mae": None, "mse": None, "r2": None}
            mean_square = metrics.target_m2 / metrics.count + metrics.target_mean**2
            if math.sqrt(metrics.mse) <= _FLOAT32_RESOLUTION * math.sqrt(mean_square):
                return {"mae": 0.0, "mse": 0.0, "r2": 1.0}
            result = metrics.result()
            return rounded({name: result[name] for name in ("mae", "mse", "r2")})
        if self.coefficients is None:
            return {"accuracy": None, "log_loss": None}
        return {"accuracy": metrics.accuracy, **rounded({"log_loss": metrics.log_loss})}
