"""The course's chapter 02 ("improving a model"), as `dvc exp run`s on its circles and blobs.

The expected lines are the notebook's (02_pytorch_classification.ipynb in
mrdbourke/pytorch-deep-learning), printed there on a GPU; the CPU prints the same numbers at its
precision. The params are built here, so a fork with other defaults keeps these checks.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, clone_copy, predict, run
from tests.helpers import COURSE_PARAMS, documented_commands
from tests.test_bad_inputs import assert_clean_failure, outputs_snapshot

pytestmark = pytest.mark.slow

# The course's CircleModelV0 run, the first of docs/experiments.md's sequence: its circles as
# the given split, 100 epochs of SGD at lr 0.1.
CIRCLES = {
    **COURSE_PARAMS,
    "task": "binary_classification",
    "data": {
        **COURSE_PARAMS["data"],
        "source": "csv",
        "path": "data/raw/circles_train.csv",
        "test_path": "data/raw/circles_test.csv",
        "target": "label",
    },
    "model": {"name": "mlp", "options": {}, "hidden_units": [5], "activation": "none"},
    "train": {**COURSE_PARAMS["train"], "loss": "bce", "lr": 0.1, "epochs": 100, "log_every": 10},
}
# The sequence's commands, as docs/experiments.md shows them.
SEQUENCE = [
    command
    for command in documented_commands(REPO_ROOT / "docs/experiments.md")
    if command.startswith(
        ("dvc exp run -n circle-v", "dvc exp run -n wider-v2", "dvc exp show --md")
    )
]
CIRCLE_MODEL_V2 = """\
Epoch: 0 | Loss: 0.69295, Accuracy: 50.00% | Test Loss: 0.69319, Test Accuracy: 50.00%
Epoch: 100 | Loss: 0.69115, Accuracy: 52.88% | Test Loss: 0.69102, Test Accuracy: 52.50%
Epoch: 200 | Loss: 0.68977, Accuracy: 53.37% | Test Loss: 0.68940, Test Accuracy: 55.00%
Epoch: 300 | Loss: 0.68795, Accuracy: 53.00% | Test Loss: 0.68723, Test Accuracy: 56.00%
Epoch: 400 | Loss: 0.68517, Accuracy: 52.75% | Test Loss: 0.68411, Test Accuracy: 56.50%
Epoch: 500 | Loss: 0.68102, Accuracy: 52.75% | Test Loss: 0.67941, Test Accuracy: 56.50%
Epoch: 600 | Loss: 0.67515, Accuracy: 54.50% | Test Loss: 0.67285, Test Accuracy: 56.00%
Epoch: 700 | Loss: 0.66659, Accuracy: 58.38% | Test Loss: 0.66322, Test Accuracy: 59.00%
Epoch: 800 | Loss: 0.65160, Accuracy: 64.00% | Test Loss: 0.64757, Test Accuracy: 67.50%
Epoch: 900 | Loss: 0.62362, Accuracy: 74.00% | Test Loss: 0.62145, Test Accuracy: 79.00%
"""
# CircleModelV1 (no activation); the notebook words this model's line a little differently.
CIRCLE_MODEL_V1 = """\
Epoch: 0 | Loss: 0.69396, Accuracy: 50.88% | Test loss: 0.69261, Test acc: 51.00%
Epoch: 100 | Loss: 0.69305, Accuracy: 50.38% | Test loss: 0.69379, Test acc: 48.00%
Epoch: 200 | Loss: 0.69299, Accuracy: 51.12% | Test loss: 0.69437, Test acc: 46.00%
Epoch: 300 | Loss: 0.69298, Accuracy: 51.62% | Test loss: 0.69458, Test acc: 45.00%
Epoch: 400 | Loss: 0.69298, Accuracy: 51.12% | Test loss: 0.69465, Test acc: 46.00%
Epoch: 500 | Loss: 0.69298, Accuracy: 51.00% | Test loss: 0.69467, Test acc: 46.00%
Epoch: 600 | Loss: 0.69298, Accuracy: 51.00% | Test loss: 0.69468, Test acc: 46.00%
Epoch: 700 | Loss: 0.69298, Accuracy: 51.00% | Test loss: 0.69468, Test acc: 46.00%
Epoch: 800 | Loss: 0.69298, Accuracy: 51.00% | Test loss: 0.69468, Test acc: 46.00%
Epoch: 900 | Loss: 0.69298, Accuracy: 51.00% | Test loss: 0.69468, Test acc: 46.00%
"""


# The course's BlobModel: four classes, [8, 8] without an activation, 100 epochs of SGD at 0.1.
BLOBS = [
    *("-S", "task=multiclass_classification"),
    *("-S", "data.path=data/raw/blobs_train.csv", "-S", "data.test_path=data/raw/blobs_test.csv"),
    *("-S", "model.hidden_units=[8,8]", "-S", "model.activation=none"),
    *("-S", "train.loss=cross_entropy", "-S", "train.epochs=100", "-S", "train.log_every=10"),
]
BLOB_MODEL = """\
Epoch: 0 | Loss: 1.04324, Acc: 65.50% | Test Loss: 0.57861, Test Acc: 95.50%
Epoch: 10 | Loss: 0.14398, Acc: 99.12% | Test Loss: 0.13037, Test Acc: 99.00%
Epoch: 20 | Loss: 0.08062, Acc: 99.12% | Test Loss: 0.07216, Test Acc: 99.50%
Epoch: 30 | Loss: 0.05924, Acc: 99.12% | Test Loss: 0.05133, Test Acc: 99.50%
Epoch: 40 | Loss: 0.04892, Acc: 99.00% | Test Loss: 0.04098, Test Acc: 99.50%
Epoch: 50 | Loss: 0.04295, Acc: 99.00% | Test Loss: 0.03486, Test Acc: 99.50%
Epoch: 60 | Loss: 0.03910, Acc: 99.00% | Test Loss: 0.03083, Test Acc: 99.50%
Epoch: 70 | Loss: 0.03643, Acc: 99.00% | Test Loss: 0.02799, Test Acc: 99.50%
Epoch: 80 | Loss: 0.03448, Acc: 99.00% | Test Loss: 0.02587, Test Acc: 99.50%
Epoch: 90 | Loss: 0.03300, Acc: 99.12% | Test Loss: 0.02423, Test Acc: 99.50%
"""


def numbers(lines: str) -> list[list[str]]:
    """Each epoch line's numbers, as printed: the course's rounding, whatever the wording."""
    return [re.findall(r"\d+(?:\.\d+)?", line) for line in lines.splitlines() if "Epoch" in line]


@pytest.fixture
def circles_repo(course_repo, tmp_path) -> Path:
    repo = clone_copy(course_repo, tmp_path / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(CIRCLES, sort_keys=False))
    run(["git", "commit", "-q", "-am", "The course's circles"], repo)
    return repo


def test_the_documented_sequence_of_circle_models_prints_the_course_numbers(circles_repo):
    outputs = [run(["sh", "-c", command], circles_repo).stdout for command in SEQUENCE]
    v0, v1, v2, table = outputs[0], outputs[1], outputs[2], outputs[-1]
    figure = (circles_repo / "plots/predictions.png").read_bytes()
    shown = run(["python", "-m", "tools.experiments"], circles_repo).stdout

    assert len(SEQUENCE) == 5
    assert [line for line in v2.splitlines() if line.startswith("Epoch")] == (
        CIRCLE_MODEL_V2.splitlines()
    )
    assert numbers(v1) == numbers(CIRCLE_MODEL_V1)
    assert "Read 200 rows from data/raw/circles_test.csv, the given test split" in v0
    rows = {
        name[1]: line
        for line in table.splitlines()[2:]
        if line.startswith("|") and (name := re.search(r"\[([\w-]+)\]", line.split("|")[1]))
    }
    assert "| 0.865 " in rows["circle-v2"] and "| 0.46 " in rows["circle-v1"]
    # Best first, by accuracy, in the documented table and in `make experiments`.
    assert list(rows)[:2] == ["wider-v2", "circle-v2"]
    assert "sorted by test accuracy" in shown
    assert shown.index("circle-v2") < shown.index("circle-v1")
    # The decision boundary, train and test side by side, and the confusion matrix: 18 x 6 inches
    # at 72 dpi.
    assert figure[16:24] == (1296).to_bytes(4, "big") + (432).to_bytes(4, "big")
    train = json.loads((circles_repo / "metrics/train.json").read_text())
    assert set(train) >= {"train_loss", "train_accuracy"} and "learned" not in train


def test_the_course_blob_model_classifies_four_classes_and_predicts_them(circles_repo):
    result = run(["dvc", "exp", "run", *BLOBS], circles_repo)
    metrics = json.loads((circles_repo / "metrics/evaluate.json").read_text())
    card = json.loads((circles_repo / "models/export/model_card.json").read_text())
    rows = circles_repo / "rows.csv"
    rows.write_text("x1,x2\n-8,7\n5,5\n")
    predict(circles_repo, rows, circles_repo / "out.csv", check=True)
    lines = (circles_repo / "out.csv").read_text().splitlines()

    assert numbers(result.stdout) == numbers(BLOB_MODEL)
    assert metrics["accuracy"] == 0.995
    # The multinomial baseline: scikit-learn's LogisticRegression(C=1, solver="newton-cholesky")
    # reaches a test log loss of 0.00786747225 on this split.
    assert metrics["logistic_baseline"]["log_loss"] == pytest.approx(0.00786747225, rel=1e-4)
    assert (card["output"], card["classes"]) == ("logits", [0, 1, 2, 3])
    assert lines[0] == "x1,x2,predicted,probability_0,probability_1,probability_2,probability_3"
    predicted = [line.split(",") for line in lines[1:]]
    assert [row[2] for row in predicted] == ["3", "1"]
    assert all(sum(map(float, row[3:])) == pytest.approx(1.0) for row in predicted)


MULTICLASS = "multiclass_classification"


@pytest.mark.parametrize(
    ("task", "train", "test", "message"),
    [
        (MULTICLASS, "0\n1\n2\n", "0\n3\n", "class 3 is in the test split but not in the train"),
        (
            MULTICLASS,
            "0\n1.5\n2\n",
            "0\n1\n",
            "whole-number class labels up to ±16,777,216; column 'label' has 1.5",
        ),
        (MULTICLASS, "2\n2\n2\n", "2\n", "the train split has 1 class(es); it needs two or more"),
        (
            "binary_classification",
            "0\n0\n0\n",
            "0\n1\n",
            "the train split has only class 0 (3 rows); a model needs rows of both 0 and 1",
        ),
    ],
)
def test_bad_class_labels_fail_in_one_line_and_write_nothing(
    circles_repo, task, train, test, message
):
    for name, labels in (("train", train), ("test", test)):
        values = labels.split()
        table = "x1,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
        (circles_repo / f"data/raw/bad_{name}.csv").write_text(table)
    params = yaml.safe_load((circles_repo / "params.yaml").read_text())
    params["task"] = task
    params["data"].update(path="data/raw/bad_train.csv", test_path="data/raw/bad_test.csv")
    params["train"]["loss"] = "cross_entropy" if task == MULTICLASS else "bce"
    (circles_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = outputs_snapshot(circles_repo)

    result = run(["dvc", "repro", "split"], circles_repo, check=False)

    assert_clean_failure(result, message)
    after = outputs_snapshot(circles_repo)
    split_outputs = ("data/split.parquet", "data/features.json")
    assert [after.get(name) for name in split_outputs] == [before.get(n) for n in split_outputs]
