"""Users' own CSV data through DVC, on real public tables the project did not make.

scikit-learn ships the tables: diabetes (442 rows, 10 correlated features), breast cancer (569
rows, 30 features, classes in an uneven order) and wine (178 rows, 13 features, sorted by
class). The recipes of docs/own-data.md must reach the best linear model on the project's own
split: the closed form for regression, an L2-regularised logistic regression (scikit-learn's
own, C = 1) for classification.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytorch_workflow import evaluation
from tests.conftest import REPO_ROOT, predict, run
from tests.helpers import split_side, table_file
from tests.test_bad_inputs import assert_clean_failure, set_params

pytestmark = pytest.mark.slow


def recipe(heading: str, document: Path = REPO_ROOT / "docs/own-data.md") -> list[str]:
    """The `dvc exp run` command a document gives under `heading`, as arguments."""
    section = document.read_text().split(heading, 1)[1]
    command = re.search(r"^dvc exp run((?: \\\n|.)*)$", section, re.MULTILINE).group(0)
    return command.replace("\\\n", " ").split()


def use_table(repo: Path, name: str, frame: pd.DataFrame) -> str:
    path = f"data/raw/{name}.csv"
    frame.to_csv(repo / path, index=False)
    return path


def metrics_of(repo: Path) -> dict:
    return json.loads((repo / "metrics/evaluate.json").read_text())


def run_up_to_evaluate(repo: Path, heading: str, *settings: str) -> subprocess.CompletedProcess:
    """The recipe under `heading`, with more `-S` settings, stopping before export (`dvc exp run
    evaluate`): the tests that use it read metrics only."""
    return run([*recipe(heading), "evaluate", *(a for s in settings for a in ("-S", s))], repo)


REGRESSION = "### Regression: the least-squares optimum"
CLASSIFICATION = "### Binary classification: logistic regression"


# scikit-learn is imported where it is used: three seconds of every test run's collection.
def test_the_regression_recipe_reaches_the_closed_form_on_a_correlated_real_table(pipeline_repo):
    from sklearn import datasets
    from sklearn.linear_model import LinearRegression

    table = datasets.load_diabetes(as_frame=True, scaled=False).frame
    path = use_table(pipeline_repo, "diabetes", table)

    run_up_to_evaluate(pipeline_repo, REGRESSION, f"data.path={path}", "data.target=target")

    metrics = metrics_of(pipeline_repo)
    assert metrics["mse_over_closed_form"] <= 1.001
    # The closed form itself is scikit-learn's least squares on the same split.
    train, test = split_side(pipeline_repo, "train"), split_side(pipeline_repo, "test")
    fit = LinearRegression().fit(train.drop(columns="target"), train["target"])
    reference = np.mean((fit.predict(test.drop(columns="target")) - test["target"]) ** 2)
    assert metrics["closed_form"]["mse"] == pytest.approx(reference, rel=1e-6)


def assert_as_good_as_logistic_regression(metrics: dict) -> None:
    baseline = metrics["logistic_baseline"]
    assert abs(metrics["accuracy"] - baseline["accuracy"]) <= 0.01
    assert metrics["log_loss_over_baseline"] <= 1.05


def test_the_classification_recipe_is_as_good_as_logistic_regression_on_a_real_table(pipeline_repo):
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression

    table = datasets.load_breast_cancer(as_frame=True).frame  # 30 features, classes unevenly
    path = use_table(pipeline_repo, "breast_cancer", table)

    run_up_to_evaluate(pipeline_repo, CLASSIFICATION, f"data.path={path}", "data.target=target")

    metrics = metrics_of(pipeline_repo)
    assert_as_good_as_logistic_regression(metrics)
    # The baseline is scikit-learn's default logistic regression on the same standardised split.
    features = json.loads((pipeline_repo / "data/features.json").read_text())
    train, test = split_side(pipeline_repo, "train"), split_side(pipeline_repo, "test")

    def scale(frame):
        return (frame[features["features"]] - features["mean"]) / features["std"]

    reference = LogisticRegression(max_iter=10_000, tol=1e-10).fit(scale(train), train["target"])
    assert metrics["logistic_baseline"]["accuracy"] == reference.score(scale(test), test["target"])
    probability = np.clip(reference.predict_proba(scale(test))[:, 1], 1e-15, 1 - 1e-15)
    target = test["target"]
    log_loss = -np.mean(target * np.log(probability) + (1 - target) * np.log(1 - probability))
    # Near the optimum the objective is flat: equally good fits differ in their test log loss.
    assert metrics["logistic_baseline"]["log_loss"] == pytest.approx(log_loss, rel=0.02)


def test_the_documented_classification_recipe_reaches_the_baseline_and_predicts_probabilities(
    pipeline_repo,
):
    run(recipe(CLASSIFICATION), pipeline_repo)  # data/raw/admissions.csv, as documented

    metrics = metrics_of(pipeline_repo)
    assert_as_good_as_logistic_regression(metrics)
    assert {"precision", "recall", "f1"} <= set(metrics) and "closed_form" not in metrics
    inputs = pipeline_repo / "students.csv"
    inputs.write_text("exam_1,exam_2,hours_studied\n95,90,35\n40,35,1\n")
    predict(pipeline_repo, inputs, "out.csv", check=True)
    predicted = pd.read_csv(pipeline_repo / "out.csv")
    assert predicted["probability"][0] > 0.9 and predicted["probability"][1] < 0.1
    assert list(predicted["predicted"]) == [1, 0]


def test_a_stratified_split_keeps_the_balance_of_a_file_sorted_by_class(pipeline_repo):
    from sklearn import datasets

    table = datasets.load_wine(as_frame=True).frame  # sorted by class
    table["target"] = (table["target"] == 0).astype(int)
    path = use_table(pipeline_repo, "wine", table)
    options = [
        f"data.path={path}",
        "data.target=target",
        "split.stratify=true",
        "split.shuffle=true",
    ]

    result = run_up_to_evaluate(pipeline_repo, CLASSIFICATION, *options)

    shares = json.loads((pipeline_repo / "metrics/split.json").read_text())
    assert shares["train"]["rows"] == 142
    assert shares["train"]["class_1_share"] == pytest.approx(
        shares["test"]["class_1_share"], abs=0.02
    )
    assert "note:" not in result.stdout
    assert_as_good_as_logistic_regression(metrics_of(pipeline_repo))


def test_the_readme_example_is_the_regression_recipe_and_predicts(pipeline_repo):
    assert recipe("For example", REPO_ROOT / "README.md") == recipe(REGRESSION)

    printed = run(recipe(REGRESSION), pipeline_repo).stdout  # data/raw/houses.csv, as documented

    assert metrics_of(pipeline_repo)["mse_over_closed_form"] <= 1.001
    assert "note:" not in printed
    inputs = pipeline_repo / "new_houses.csv"
    inputs.write_text("area_m2,rooms,age_years,distance_km\n120,4,10,5\n60,2,80,30\n")
    predict(pipeline_repo, inputs, "out.csv", check=True)
    predicted = pd.read_csv(pipeline_repo / "out.csv")["prediction"]
    # The true relation, without noise: 50 + 2.5 area + 15 rooms - 0.8 age - 4 distance.
    np.testing.assert_allclose(predicted, [382.0, 46.0], atol=15)


def test_the_course_defaults_on_a_table_of_ones_own_get_a_note_pointing_to_the_recipes(
    pipeline_repo,
):
    # The README's first own-data command, on data/raw/houses.csv, up to evaluate.
    command = recipe("## Your own data", REPO_ROOT / "README.md")
    command = [a.replace("data/raw/my.csv", "data/raw/houses.csv") for a in command]

    printed = run([*command[:3], "evaluate", *command[3:]], pipeline_repo).stdout

    ratio = metrics_of(pipeline_repo)["mse_over_closed_form"]
    assert ratio > evaluation.FAR_WORSE_THAN_BASELINE
    note = f"note: the model's test MSE is {ratio:.3g} times the least-squares fit's"
    assert note in printed and "docs/own-data.md" in printed


def test_a_constant_test_target_leaves_r2_undefined_and_evaluate_still_reports(pipeline_repo):
    dataset = pd.read_parquet(pipeline_repo / "data/dataset.parquet")
    in_train = pd.read_parquet(pipeline_repo / "data/split.parquet")["train"]
    dataset.loc[~in_train, "y"] = 7.0  # one target value in the test split
    (pipeline_repo / "data/dataset.parquet").unlink()  # not through a link into DVC's cache
    table_file(pipeline_repo / "data/dataset.parquet", dataset.to_dict("series"))

    result = run([sys.executable, "-m", "stages.evaluate"], pipeline_repo)

    assert metrics_of(pipeline_repo)["r2"] is None
    assert "r2 undefined" in result.stdout


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


def test_a_csv_value_beyond_float32_is_named_with_its_row_and_column(pipeline_repo):
    (pipeline_repo / "data/raw/big.csv").write_text("a,y\n1,2\n2,3\n1e39,4\n")
    set_params(pipeline_repo, data__source="csv", data__path="data/raw/big.csv")

    result = run([sys.executable, "-m", "stages.prepare"], pipeline_repo, check=False)

    assert_clean_failure(
        result, "data/raw/big.csv: row 3, column 'a': 1e+39 is beyond float32's range"
    )


def test_a_csv_header_longer_than_a_block_is_refused_in_bounded_memory(pipeline_repo):
    # pyarrow reads a CSV in 4 MiB blocks and cannot read a longer header; reading such a line
    # whole to find the problem could take all the memory (a 1 GB header): it is refused unread.
    header = ",".join(f"c{i}" for i in range(600_000))
    (pipeline_repo / "data/raw/wide.csv").write_text(f"{header},y\n" + "1," * 600_000 + "2\n")
    set_params(pipeline_repo, data__source="csv", data__path="data/raw/wide.csv")

    result = run([sys.executable, "-m", "stages.prepare"], pipeline_repo, check=False)

    assert_clean_failure(result, "data/raw/wide.csv: the header is longer than 4 MiB")
