import math

import numpy as np
import pytest

from pytorch_workflow.metrics import regression_metrics


def test_metrics_on_known_values():
    actual = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    predicted = np.array([1.5, 2.0, 2.0, 4.0], dtype=np.float32)

    metrics = regression_metrics(actual, predicted)

    assert metrics["mae"] == pytest.approx(0.375)
    assert metrics["mse"] == pytest.approx(0.3125)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.3125))
    assert metrics["r2"] == pytest.approx(1 - 1.25 / 5.0)
    assert metrics["max_abs_error"] == pytest.approx(1.0)


def test_perfect_predictions():
    actual = np.linspace(0, 1, 10)

    metrics = regression_metrics(actual, actual.copy())

    assert metrics == {"mae": 0.0, "mse": 0.0, "rmse": 0.0, "r2": 1.0, "max_abs_error": 0.0}


def test_r2_of_a_constant_target_is_left_out_rather_than_infinite():
    metrics = regression_metrics(np.ones(4), np.array([1.0, 2.0, 1.0, 1.0]))

    assert metrics["r2"] is None
    assert metrics["mae"] == pytest.approx(0.25)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError):
        regression_metrics(np.ones(3), np.ones(4))
