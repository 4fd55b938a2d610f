"""Test metrics and the linear baselines: known values, chunk by chunk, against scikit-learn."""

import math

import numpy as np
import pytest
import torch

from pytorch_workflow import evaluation
from pytorch_workflow.baselines import (
    MAX_BASELINE_UNKNOWNS,
    Baseline,
    least_squares,
    logistic_regression,
    multinomial_regression,
    rounded,
    solve,
    unknowns,
)
from pytorch_workflow.data_setup import fitted_features, read_split, split_dataset
from pytorch_workflow.metrics import (
    ClassificationMetrics,
    MulticlassMetrics,
    RegressionMetrics,
    sigmoid,
    softplus,
)
from pytorch_workflow.params import CLASSIFICATION, MULTICLASS, REGRESSION
from pytorch_workflow.tables import ParquetTable
from tests.helpers import split_params, table_file


def chunks_of(X, y, size):
    return lambda: ((X[i : i + size], y[i : i + size]) for i in range(0, len(y), size))


def baseline_metrics(task, train, test, features, outputs=1):
    """A baseline fitted on `train`, then scored on `test` chunk by chunk, as evaluate does."""
    baseline = Baseline(task, train, features, outputs)
    for X, y in test():
        baseline.add(y, X)
    return baseline.result()


# scikit-learn is imported where it is used: three seconds of every test run's collection.
def diabetes():
    """The diabetes table as float32, as the pipeline stores it: train (first 80 %) and test."""
    from sklearn import datasets

    X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    X, y = X.astype(np.float32), y.astype(np.float32)
    return (X[:350], y[:350]), (X[350:], y[350:])


def breast_cancer():
    """The breast cancer table, standardised on its train rows as the pipeline does, float32."""
    from sklearn import datasets

    X, y = datasets.load_breast_cancer(return_X_y=True)
    mean, std = X[:450].mean(axis=0), X[:450].std(axis=0)
    X, y = ((X - mean) / std).astype(np.float32), y.astype(np.float32)
    return (X[:450], y[:450]), (X[450:], y[450:])


def with_dependent_columns(X):
    """X with a copy of its first column and a constant column: a rank-deficient design."""
    return np.column_stack([X, X[:, 0], np.full(len(X), 3.0, dtype=np.float32)])


def sklearn_logistic(X, y):
    from sklearn.linear_model import LogisticRegression

    # C = 1 is the baseline's penalty; a tight tolerance, so that the solvers' stops agree.
    return LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000).fit(X.astype(np.float64), y)


def test_sigmoid_and_softplus_match_their_formulas_and_do_not_overflow():
    z = np.array([-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0])

    assert sigmoid(z) == pytest.approx(1 / (1 + np.exp(-z)), rel=1e-15)
    assert softplus(z) == pytest.approx(np.log1p(np.exp(z)), rel=1e-15)
    with np.errstate(over="raise", invalid="raise"):  # underflow to 0 is the right answer
        extremes = np.array([-1000.0, 1000.0])
        assert sigmoid(extremes).tolist() == [0.0, 1.0]
        assert softplus(extremes).tolist() == [0.0, 1000.0]


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


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_r2_is_scikit_learns_for_targets_of_a_small_spread_near_or_far_from_zero(offset):
    # The cases torchmetrics' R2Score gets wrong (see pytorch_workflow/metrics.py).
    from sklearn.metrics import r2_score

    actual = offset + np.linspace(0.0, 0.01, 100)
    predicted = actual + np.random.default_rng(0).normal(0.0, 5e-4, size=100)
    metrics = RegressionMetrics()
    for start in range(0, 100, 30):
        metrics.add(actual[start : start + 30], predicted[start : start + 30])

    assert metrics.result()["r2"] == pytest.approx(r2_score(actual, predicted), rel=1e-6)


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


def test_solve_matches_numpy_and_gives_dependent_columns_the_minimum_norm_solution():
    rng = np.random.default_rng(1)
    factor = rng.normal(size=(8, 6))
    matrix, rhs = factor.T @ factor, rng.normal(size=6)

    assert solve(matrix, rhs) == pytest.approx(np.linalg.solve(matrix, rhs), rel=1e-10)
    singular = np.array([[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])  # repeat, constant
    assert solve(singular, np.array([4.0, 4.0, 0.0])) == pytest.approx([1.0, 1.0, 0.0])


def test_baseline_metrics_are_rounded_to_ten_significant_digits():
    assert rounded({"mse": 1 / 3, "r2": None, "mae": 123456.789012345}) == {
        "mse": 0.3333333333,
        "r2": None,
        "mae": 123456.789,
    }


def test_least_squares_recovers_an_exact_relation_in_chunks():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5000, 3)).astype(np.float32)
    y = (X.astype(np.float64) @ [2.0, -3.0, 0.5] + 1.0).astype(np.float32)

    coefficients = least_squares(chunks_of(X, y, 700), 3)

    assert coefficients == pytest.approx([2.0, -3.0, 0.5, 1.0], abs=1e-5)


@pytest.mark.parametrize("dependent", [False, True], ids=["diabetes", "rank-deficient"])
def test_least_squares_is_scikit_learns_linear_regression_on_a_real_table(dependent):
    from sklearn.linear_model import LinearRegression

    (X, y), (X_test, y_test) = diabetes()
    if dependent:
        X, X_test = with_dependent_columns(X), with_dependent_columns(X_test)

    coefficients = least_squares(chunks_of(X, y, 64), X.shape[1])
    metrics = baseline_metrics(
        REGRESSION, chunks_of(X, y, 64), chunks_of(X_test, y_test, 64), X.shape[1]
    )

    reference = LinearRegression().fit(X.astype(np.float64), y)
    assert coefficients[:-1] == pytest.approx(reference.coef_, rel=1e-8, abs=1e-8)
    assert coefficients[-1] == pytest.approx(reference.intercept_, rel=1e-10)
    errors = reference.predict(X_test.astype(np.float64)) - y_test
    assert metrics == pytest.approx(
        {
            "mae": np.mean(np.abs(errors)),
            "mse": np.mean(errors**2),
            "r2": reference.score(X_test.astype(np.float64), y_test),
        },
        rel=1e-9,
    )
    assert metrics == rounded(metrics)


def test_a_perfect_closed_form_fit_is_reported_as_exact_not_as_rounding_noise():
    x = np.linspace(0, 1, 50, dtype=np.float32)
    y = np.float32(0.7) * x + np.float32(0.3)  # float32 targets: residuals of about 1e-8
    X = x.reshape(-1, 1)

    train, test = chunks_of(X[:40], y[:40], 40), chunks_of(X[40:], y[40:], 10)

    metrics = baseline_metrics(REGRESSION, train, test, 1)

    assert metrics == {"mae": 0.0, "mse": 0.0, "r2": 1.0}


def test_the_logistic_baseline_reaches_the_penalised_optimum():
    (X, y), _ = breast_cancer()

    coefficients = logistic_regression(chunks_of(X, y, 64), X.shape[1])

    # At the optimum the gradient of sum(log loss) + 0.5 |w|^2 (intercept unpenalised) is zero.
    design = np.column_stack([X.astype(np.float64), np.ones(len(y))])
    gradient = design.T @ (sigmoid(design @ coefficients) - y) + np.append(coefficients[:-1], 0)
    assert np.max(np.abs(gradient)) < 1e-8


@pytest.mark.parametrize("dependent", [False, True], ids=["breast cancer", "rank-deficient"])
def test_the_logistic_baseline_is_scikit_learns_logistic_regression_on_a_real_table(dependent):
    (X, y), (X_test, y_test) = breast_cancer()
    if dependent:
        X, X_test = with_dependent_columns(X), with_dependent_columns(X_test)

    coefficients = logistic_regression(chunks_of(X, y, 64), X.shape[1])
    metrics = baseline_metrics(
        CLASSIFICATION, chunks_of(X, y, 64), chunks_of(X_test, y_test, 64), X.shape[1]
    )

    reference = sklearn_logistic(X, y)
    # scikit-learn's L-BFGS stops near the optimum, not on it.
    assert coefficients[:-1] == pytest.approx(reference.coef_[0], abs=1e-5)
    assert coefficients[-1] == pytest.approx(reference.intercept_[0], abs=1e-5)
    probability = reference.predict_proba(X_test.astype(np.float64))[:, 1]
    log_loss = -np.mean(y_test * np.log(probability) + (1 - y_test) * np.log(1 - probability))
    assert metrics["accuracy"] == reference.score(X_test.astype(np.float64), y_test)
    assert metrics["log_loss"] == pytest.approx(log_loss, rel=1e-6)


def test_the_logistic_baseline_converges_on_separable_data():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 1], dtype=np.float32)

    metrics = baseline_metrics(CLASSIFICATION, chunks_of(X, y, 4), chunks_of(X, y, 4), 1)

    assert metrics["accuracy"] == 1.0 and math.isfinite(metrics["log_loss"])


def wine():
    """The wine table (three classes), standardised on its train rows, float32, shuffled once
    with a fixed seed (the file is sorted by class)."""
    from sklearn import datasets

    X, y = datasets.load_wine(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    mean, std = X[:140].mean(axis=0), X[:140].std(axis=0)
    X = ((X - mean) / std).astype(np.float32)
    return (X[:140], y[:140]), (X[140:], y[140:])


def test_multiclass_metrics_on_known_values():
    metrics = MulticlassMetrics(3)
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    metrics.add(np.array([0, 1, 2, 2]), logits)

    result = metrics.result()

    assert metrics.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert result["accuracy"] == 0.75
    assert result["precision"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert result["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    expected = np.mean([np.log(np.exp(2) + 2) - z for z in (2.0, 2.0, 0.0, 2.0)])
    assert result["log_loss"] == pytest.approx(expected)


def test_a_class_the_test_split_lacks_does_not_count_in_the_macro_average():
    # Three classes in train; the test split has two, and every row is right.
    metrics = MulticlassMetrics(3)
    metrics.add(np.array([0, 2]), np.array([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))

    result = metrics.result()

    assert result["accuracy"] == result["precision"] == result["recall"] == result["f1"] == 1.0


def test_the_multinomial_baseline_is_scikit_learns_logistic_regression_on_a_real_table():
    from sklearn.linear_model import LogisticRegression

    (X, y), (X_test, y_test) = wine()
    coefficients = multinomial_regression(chunks_of(X, y, 32), X.shape[1], 3)
    metrics = baseline_metrics(
        MULTICLASS, chunks_of(X, y, 32), chunks_of(X_test, y_test, 32), 13, 3
    )

    reference = LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000, solver="newton-cholesky")
    reference.fit(X.astype(np.float64), y)
    # The same optimum: weights, and intercepts up to the one constant no probability sees.
    np.testing.assert_allclose(coefficients[:-1].T, reference.coef_, rtol=0, atol=1e-5)
    intercepts = coefficients[-1] - coefficients[-1].mean()
    centred = reference.intercept_ - reference.intercept_.mean()
    np.testing.assert_allclose(intercepts, centred, rtol=0, atol=1e-5)
    probability = reference.predict_proba(X_test.astype(np.float64))
    log_loss = -np.mean(np.log(probability[np.arange(len(y_test)), y_test]))
    assert metrics["accuracy"] == reference.score(X_test.astype(np.float64), y_test)
    assert metrics["log_loss"] == pytest.approx(log_loss, rel=1e-6)


@pytest.mark.parametrize(
    ("task", "features", "outputs", "left_out"),
    [
        (REGRESSION, 2000, 1, {"mae": None, "mse": None, "r2": None}),
        (CLASSIFICATION, 2000, 1, {"accuracy": None, "log_loss": None}),
        (MULTICLASS, 500, 4, {"accuracy": None, "log_loss": None}),
    ],
)
def test_a_baseline_too_large_to_solve_is_left_out_and_reads_no_row(
    task, features, outputs, left_out
):
    assert unknowns(features, outputs) > MAX_BASELINE_UNKNOWNS  # 2,001 and 2,004

    def unread():
        raise AssertionError("a left-out baseline read the train split")

    assert baseline_metrics(task, unread, lambda: [], features, outputs) == left_out


def test_a_model_far_worse_than_its_baseline_gets_a_note_and_one_near_it_none():
    far = evaluation.FAR_WORSE_THAN_BASELINE * 1.5

    assert "test log loss is 3 times the logistic baseline's" in evaluation.baseline_note(
        {"accuracy": 0.5, "log_loss_over_baseline": far}
    )
    assert "test MSE is 3 times" in evaluation.baseline_note({"mse_over_closed_form": far})
    assert "see data.standardize, train.lr" in evaluation.baseline_note(
        {"mse_over_closed_form": far}
    )
    already = evaluation.baseline_note({"mse_over_closed_form": far}, standardized=True)
    assert "see train.lr, train.optimizer and train.epochs (" in already
    for near in ({"mse_over_closed_form": 1.0}, {"log_loss_over_baseline": None}, {"mae": 0.0}):
        assert evaluation.baseline_note(near) is None


def test_a_model_trained_for_another_loss_is_told_so_beside_the_recipes():
    far = {"accuracy": 1.0, "log_loss_over_baseline": evaluation.FAR_WORSE_THAN_BASELINE * 14}

    note = evaluation.baseline_note(far, loss_options={"label_smoothing": 0.1})

    assert "see data.standardize, train.lr" in note
    assert note.endswith(
        "; train.loss_options (label_smoothing) also train it for another loss than the log loss"
    )


@pytest.mark.parametrize("features", [1, MAX_BASELINE_UNKNOWNS], ids=["fitted", "left out"])
def test_evaluate_plots_every_train_row_whether_or_not_the_baseline_is_left_out(tmp_path, features):
    rng = np.random.default_rng(0)
    columns = {f"x{i}": rng.normal(size=20) for i in range(features)}
    table_file(tmp_path / "dataset.parquet", {**columns, "y": rng.normal(size=20)})
    dataset = ParquetTable(tmp_path / "dataset.parquet")
    _, stats = split_dataset(dataset, split_params(), REGRESSION, 42, tmp_path / "split.parquet")
    train, test = read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")
    model = torch.nn.Linear(features, 1)

    result = evaluation.evaluate(
        model,
        train,
        test,
        fitted_features(dataset.columns, stats, standardize=False),
        REGRESSION,
        torch.device("cpu"),
        tmp_path / "outputs.parquet",
    )

    plotted, _, _ = result.train.arrays()
    assert len(plotted) == train.rows == 16
    left_out = features == MAX_BASELINE_UNKNOWNS
    assert (result.metrics["closed_form"]["mse"] is None) == left_out
