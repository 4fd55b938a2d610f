"""Users' own CSV data: k features, regression or binary classification."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pytorch_workflow.data import features_and_target, fit_features, read_csv_dataset
from pytorch_workflow.errors import UserError
from pytorch_workflow.metrics import classification_metrics, closed_form_predictions
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.params import DataParams
from tests.conftest import REPO_ROOT, run
from tests.test_bad_inputs import assert_clean_failure, set_params


def csv_params(path: Path, target: str = "y", features=None, standardize=False) -> DataParams:
    return DataParams(
        0.7, 0.3, 0.0, 1.0, 0.02, 0.0, "csv", str(path), target, features, standardize
    )


def test_features_default_to_every_numeric_column_but_the_target(tmp_path):
    path = tmp_path / "own.csv"
    pd.DataFrame({"a": [1, 2], "name": ["p", "q"], "y": [3.0, 4.0], "b": [0.5, 0.25]}).to_csv(
        path, index=False
    )

    dataset = read_csv_dataset(csv_params(path), "regression")

    assert list(dataset.columns) == ["a", "b", "y"]
    assert all(dtype == np.float32 for dtype in dataset.dtypes)


def test_listed_features_are_taken_in_order(tmp_path):
    path = tmp_path / "own.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6], "y": [0, 1]}).to_csv(path, index=False)

    dataset = read_csv_dataset(csv_params(path, features=("c", "a")), "regression")

    assert list(dataset.columns) == ["c", "a", "y"]


@pytest.mark.parametrize(
    ("content", "params", "task", "message"),
    [
        (None, {}, "regression", "data.path not found"),
        ("", {}, "regression", "not a readable CSV"),
        ("a,y\n", {}, "regression", "has no rows"),
        ("a,b\n1,2\n", {}, "regression", "data.target column 'y' not found; columns: a, b"),
        ("a,y\n1,2\n", {"features": ("a", "z")}, "regression", "column(s) not found: z"),
        ("a,y\np,2\nq,3\n", {"features": ("a",)}, "regression", "column a is not numeric"),
        ("name,y\np,2\n", {}, "regression", "no numeric column besides the target"),
        ("a,y\n1,2\n,3\n", {}, "regression", "column a has a NaN or infinite value at row 1"),
        ("a,y\n1,0\n2,2\n", {}, "binary_classification", "needs a 0/1 target; column 'y' has 0, 2"),
    ],
    ids=[
        "missing-file",
        "empty-file",
        "no-rows",
        "no-target",
        "missing-feature",
        "text-feature",
        "no-features",
        "nan",
        "non-binary",
    ],
)
def test_bad_csv_names_the_file_and_problem(tmp_path, content, params, task, message):
    path = tmp_path / "own.csv"
    if content is not None:
        path.write_text(content)

    with pytest.raises(UserError) as error:
        read_csv_dataset(csv_params(path, **params), task)

    assert str(path) in str(error.value) and message in str(error.value)


def test_standardisation_is_fitted_on_the_train_split_only():
    train = pd.DataFrame({"a": [0.0, 2.0, 4.0], "b": [1.0, 1.0, 1.0], "y": [0.0, 1.0, 2.0]})
    test = pd.DataFrame({"a": [100.0], "b": [5.0], "y": [9.0]})

    features = fit_features(train, standardize=True)
    X_test, _ = features_and_target(test, features)

    np.testing.assert_allclose(features.mean, [2.0, 1.0])
    np.testing.assert_allclose(features.std, [np.std([0.0, 2.0, 4.0]), 1.0])  # constant: 1
    np.testing.assert_allclose(X_test, [[(100 - 2) / np.std([0, 2, 4]), 4.0]], rtol=1e-6)


def test_without_standardisation_features_pass_through():
    train = pd.DataFrame({"a": [0.5, 2.0], "y": [0.0, 1.0]}, dtype=np.float32)

    features = fit_features(train, standardize=False)
    X, y = features_and_target(train, features)

    assert features.mean is None and np.array_equal(X, [[0.5], [2.0]])
    assert np.array_equal(y, [0.0, 1.0])


def test_course_model_takes_k_features_with_the_same_keys():
    model = build_model("linear_regression", seed=42, in_features=3)
    X = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])

    with torch.inference_mode():
        predicted = model(X)

    assert list(model.state_dict()) == ["weights", "bias"]
    assert model.weights.shape == (3,) and model.weights[0].item() == pytest.approx(
        0.3367, abs=1e-4
    )
    assert predicted.shape == (2, 1)
    assert predicted[1].item() == pytest.approx(model.bias.item())
    assert predicted[0].item() == pytest.approx((model.weights @ X[0]).item() + model.bias.item())


def test_v2_model_is_nn_linear_with_k_inputs():
    model = build_model("linear_regression_v2", seed=42, in_features=4)

    assert model.linear_layer.weight.shape == (1, 4)


def test_classification_metrics_on_known_values():
    actual = np.array([1, 1, 0, 0, 1])
    logits = np.array([2.0, -1.0, -3.0, 0.5, 0.1])  # predicts 1, 0, 0, 1, 1

    metrics = classification_metrics(actual, logits)

    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    probabilities = 1 / (1 + np.exp(-logits))
    log_loss = -np.mean(actual * np.log(probabilities) + (1 - actual) * np.log(1 - probabilities))
    assert metrics["log_loss"] == pytest.approx(log_loss)


def test_closed_form_recovers_an_exact_linear_relation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X @ np.array([2.0, -3.0, 0.5]) + 1.0

    predicted = closed_form_predictions(X[:40], y[:40], X[40:])

    np.testing.assert_allclose(predicted, y[40:], atol=1e-9)


# ---- end to end, through DVC -------------------------------------------------------------


def readme_command(heading: str) -> list[str]:
    """The `dvc exp run` command the README gives under `heading`, as arguments."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    command = re.search(r"^dvc exp run((?: \\\n|.)*)$", section, re.MULTILINE).group(0)
    return command.replace("\\\n", " ").split()


def metrics_of(repo: Path) -> dict:
    return json.loads((repo / "metrics/evaluate.json").read_text())


@pytest.mark.slow
def test_readme_regression_example_gets_within_one_percent_of_closed_form(pipeline_repo):
    run(readme_command("### Worked example: regression"), pipeline_repo)

    metrics = metrics_of(pipeline_repo)
    assert metrics["mse"] <= 1.01 * metrics["closed_form"]["mse"]
    card = json.loads((pipeline_repo / "models/export/model_card.json").read_text())
    assert card["input"]["columns"] == ["area_m2", "rooms", "age_years", "distance_km"]
    assert card["standardization"] is not None

    inputs = pipeline_repo / "new_houses.csv"
    inputs.write_text("area_m2,rooms,age_years,distance_km\n120,4,10,5\n60,2,80,30\n")
    run([sys.executable, "-m", "pytorch_workflow.predict", str(inputs), "out.csv"], pipeline_repo)
    predicted = pd.read_csv(pipeline_repo / "out.csv")["prediction"]
    # The true relation, without noise: 50 + 2.5 area + 15 rooms - 0.8 age - 4 distance.
    np.testing.assert_allclose(predicted, [382.0, 46.0], atol=15)


@pytest.mark.slow
def test_readme_classification_example_predicts_probabilities(pipeline_repo):
    run(readme_command("### Worked example: binary classification"), pipeline_repo)

    metrics = metrics_of(pipeline_repo)
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "log_loss"}
    assert metrics["accuracy"] >= 0.75
    confusion = pd.read_csv(pipeline_repo / "plots/confusion.csv")
    assert len(confusion) == 120 and set(confusion["predicted"]) <= {0, 1}

    inputs = pipeline_repo / "students.csv"
    inputs.write_text("exam_1,exam_2,hours_studied\n95,90,35\n40,35,1\n")
    run([sys.executable, "-m", "pytorch_workflow.predict", str(inputs), "out.csv"], pipeline_repo)
    probability = pd.read_csv(pipeline_repo / "out.csv")["probability"]
    assert probability[0] > 0.9 and probability[1] < 0.1


def write_csv_and_point_params_at_it(repo: Path, table: pd.DataFrame, **changes) -> None:
    (repo / "data/raw").mkdir(parents=True, exist_ok=True)
    table.to_csv(repo / "data/raw/own.csv", index=False)
    set_params(repo, data__source="csv", data__path="data/raw/own.csv", **changes)


@pytest.mark.slow
def test_three_feature_regression_recovers_the_true_coefficients(pipeline_repo):
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(400, 3))
    y = X @ np.array([2.0, -3.0, 0.5]) + 1.0 + rng.normal(0, 0.01, 400)
    table = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": y})
    write_csv_and_point_params_at_it(
        pipeline_repo, table, train__loss="mse", train__lr=0.2, train__epochs=400
    )

    run(["dvc", "repro"], pipeline_repo)

    learned = json.loads((pipeline_repo / "metrics/train.json").read_text())["learned"]
    np.testing.assert_allclose(
        [learned["weights.0"], learned["weights.1"], learned["weights.2"], learned["bias"]],
        [2.0, -3.0, 0.5, 1.0],
        atol=0.01,
    )
    train = pd.read_parquet(pipeline_repo / "data/train.parquet")
    assert list(train.columns) == ["a", "b", "c", "y"]


@pytest.mark.slow
@pytest.mark.parametrize(("noise", "lowest", "highest"), [(0.0, 1.0, 1.0), (1.5, 0.6, 0.95)])
def test_classification_on_separable_and_noisy_data(pipeline_repo, noise, lowest, highest):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(500, 2))
    margin = X[:, 0] + X[:, 1]
    keep = np.abs(margin) > 0.3  # a gap between the classes when there is no noise
    label = (margin + rng.normal(0, noise, 500) > 0).astype(int)
    table = pd.DataFrame({"p": X[keep, 0], "q": X[keep, 1], "label": label[keep]})
    write_csv_and_point_params_at_it(
        pipeline_repo,
        table,
        task="binary_classification",
        data__target="label",
        split__shuffle=True,
        train__loss="bce",
        train__lr=0.5,
        train__epochs=300,
    )

    run(["dvc", "repro"], pipeline_repo)

    accuracy = metrics_of(pipeline_repo)["accuracy"]
    assert lowest <= accuracy <= highest


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "binary_classification"}, "train.loss must be one of bce with task"),
        ({"train__loss": "bce"}, "train.loss must be one of l1, mse, huber with task: regression"),
        ({"data__features": ["y"]}, "data.features must not include the target column 'y'"),
        ({"data__features": "a"}, "data.features must be null or a list"),
        ({"data__source": "parquet"}, "data.source must be one of line, csv"),
    ],
)
def test_inconsistent_data_params_are_refused(pipeline_repo, changes, message):
    set_params(pipeline_repo, **{"data__source": "csv", **changes})

    assert_clean_failure(
        run([sys.executable, "-m", "stages.prepare"], pipeline_repo, check=False), message
    )


@pytest.mark.slow
def test_missing_csv_fails_in_prepare_naming_it(pipeline_repo):
    set_params(pipeline_repo, data__source="csv", data__path="data/raw/missing.csv")

    result = run([sys.executable, "-m", "stages.prepare"], pipeline_repo, check=False)

    assert_clean_failure(result, "data/raw/missing.csv: data.path not found")
