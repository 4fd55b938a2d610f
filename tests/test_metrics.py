"""Test metrics and the linear baselines: known values, chunk by chunk, against references."""

import math

import numpy as np
import pytest

from pytorch_workflow.baselines import (
    closed_form_metrics,
    least_squares,
    logistic_metrics,
    logistic_regression,
    solve,
)
from pytorch_workflow.metrics import ClassificationMetrics, RegressionMetrics


def chunks_of(X, y, size):
    return lambda: ((X[i : i + size], y[i : i + size]) for i in range(0, len(y), size))


def test_regression_metrics_on_known_values():
    metrics = RegressionMetrics()
    metrics.add(np.array([1.0, 2.0]), np.array([1.5, 2.0]))
    metrics.add(np.array([3.0, 4.0]), np.array([2.0, 4.0]))

    result = metrics.result()

    assert result == pytest.approx(
        {"mae": 0.375, "mse": 0.3125, "r2": 1 - 1.25 / 5.0, "max_abs_error": 1.0}
    )


def test_metrics_merged_over_chunks_match_one_pass():
    rng = np.random.default_rng(0)
    actual, predicted = rng.normal(size=10_000), rng.normal(size=10_000)
    whole, chunked = RegressionMetrics(), RegressionMetrics()
    whole.add(actual, predicted)
    for start in range(0, 10_000, 777):
        chunked.add(actual[start : start + 777], predicted[start : start + 777])

    assert chunked.result() == pytest.approx(whole.result(), rel=1e-12)


def test_r2_of_a_constant_target_is_left_out_rather_than_infinite():
    metrics = RegressionMetrics()
    metrics.add(np.ones(4), np.array([1.0, 2.0, 1.0, 1.0]))

    assert metrics.result()["r2"] is None


def test_classification_metrics_on_known_values():
    metrics = ClassificationMetrics()
    logits = np.array([2.0, -1.0, -3.0, 0.5, 0.1])  # predicts 1, 0, 0, 1, 1
    metrics.add(np.array([1, 1, 0, 0, 1]), logits)

    result = metrics.result()

    probabilities = 1 / (1 + np.exp(-logits))
    actual = np.array([1, 1, 0, 0, 1])
    log_loss = -np.mean(actual * np.log(probabilities) + (1 - actual) * np.log(1 - probabilities))
    assert result == pytest.approx(
        {"accuracy": 0.6, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "log_loss": log_loss}
    )


def test_solve_matches_numpy_and_leaves_dependent_columns_at_zero():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(6, 6))
    rhs = rng.normal(size=6)

    assert solve(matrix.tolist(), rhs.tolist()) == pytest.approx(
        np.linalg.solve(matrix, rhs).tolist()
    )
    singular = [[2.0, 2.0], [2.0, 2.0]]  # the second column repeats the first
    assert solve(singular, [4.0, 4.0]) == [2.0, 0.0]


def test_least_squares_recovers_an_exact_relation_in_chunks():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5000, 3)).astype(np.float32)
    y = (X.astype(np.float64) @ [2.0, -3.0, 0.5] + 1.0).astype(np.float32)

    coefficients = least_squares(chunks_of(X, y, 700), 3)

    assert coefficients == pytest.approx([2.0, -3.0, 0.5, 1.0], abs=1e-5)


def test_a_perfect_closed_form_fit_is_reported_as_exact_not_as_rounding_noise():
    x = np.linspace(0, 1, 50, dtype=np.float32)
    y = np.float32(0.7) * x + np.float32(0.3)  # float32 targets: residuals of about 1e-8
    X = x.reshape(-1, 1)

    metrics = closed_form_metrics(chunks_of(X[:40], y[:40], 40), chunks_of(X[40:], y[40:], 10), 1)

    assert metrics == {"mae": 0.0, "mse": 0.0, "r2": 1.0}


def test_a_noisy_closed_form_fit_reports_its_errors():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 2)).astype(np.float32)
    y = (X @ np.array([1.0, 2.0], dtype=np.float32) + rng.normal(0, 0.5, 1000)).astype(np.float32)

    metrics = closed_form_metrics(
        chunks_of(X[:800], y[:800], 800), chunks_of(X[800:], y[800:], 200), 2
    )

    assert 0.2 < metrics["mse"] < 0.35 and 0.9 < metrics["r2"] < 1.0


def test_the_logistic_baseline_matches_a_direct_newton_solution():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X @ np.array([1.5, -2.0, 0.0]) + rng.logistic(size=400) > 0).astype(np.float32)

    coefficients = logistic_regression(chunks_of(X, y, 64), 3)

    # At the optimum the gradient of sum(log loss) + 0.5 |w|^2 (intercept unpenalised) is zero.
    design = np.column_stack([X.astype(np.float64), np.ones(400)])
    probability = 1 / (1 + np.exp(-(design @ coefficients)))
    gradient = design.T @ (probability - y) + np.array([*coefficients[:3], 0.0])
    assert np.max(np.abs(gradient)) < 1e-8


def test_the_logistic_baseline_converges_on_separable_data():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 1], dtype=np.float32)

    metrics = logistic_metrics(chunks_of(X, y, 4), chunks_of(X, y, 4), 1)

    assert metrics["accuracy"] == 1.0 and math.isfinite(metrics["log_loss"])
