"""Any torch.optim optimizer and scheduler, a torch.nn loss's options, and a user's own
nn.Module, through `dvc exp run`."""

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import predict, run

pytestmark = pytest.mark.slow

ADAMW_COSINE = [
    "-S",
    "train.optimizer=adamw",
    "-S",
    "train.lr=0.001",
    "-S",
    "+train.optimizer_options.weight_decay=0.01",
    "-S",
    "train.scheduler=cosineannealinglr",
    "-S",
    "+train.scheduler_options.T_max=100",
]

# A user's own model, as they would write it at the end of model_builder.py.
OWN_MODEL = textwrap.dedent(
    """

    def relu(x: torch.Tensor) -> torch.Tensor:
        \"\"\"ReLU written out, as the course's chapter 02 exercise writes its own.\"\"\"
        return torch.maximum(x, torch.zeros_like(x))


    class ReLU(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return relu(x)


    class AdmissionsNet(nn.Module):
        \"\"\"Two hidden layers with ReLU between them, the first batch-normalised.\"\"\"

        def __init__(self, in_features: int, hidden: int = 4) -> None:
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(in_features, hidden),
                nn.BatchNorm1d(hidden),  # its state holds an int64 count of batches
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                ReLU(),
                nn.Linear(hidden, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)
    """
)
ADMISSIONS = [
    "-S",
    "task=binary_classification",
    "-S",
    "data.source=csv",
    "-S",
    "data.path=data/raw/admissions.csv",
    "-S",
    "data.target=admitted",
    "-S",
    "data.standardize=true",
    "-S",
    "split.shuffle=true",
    "-S",
    "train.loss=bce",
    "-S",
    "train.optimizer=adam",
    "-S",
    "train.lr=0.01",
    "-S",
    "train.epochs=200",
    "-S",
    "train.log_every=50",
]


def train_outputs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out.get("md5") for out in lock["stages"]["train"]["outs"]}


def test_adamw_with_a_cosine_schedule_trains_and_repeats_its_bytes(pipeline_repo):
    run(["dvc", "exp", "run", *ADAMW_COSINE], pipeline_repo)
    first = train_outputs(pipeline_repo)
    card = json.loads((pipeline_repo / "models/export/model_card.json").read_text())

    run(["dvc", "repro", "--force", "--single-item", "train"], pipeline_repo)

    assert train_outputs(pipeline_repo) == first
    assert card["params"]["train"]["optimizer_options"] == {"weight_decay": 0.01}
    assert card["params"]["train"]["scheduler"] == "cosineannealinglr"
    # DVCLive records the rate the schedule gave each logged epoch: near 0 at the last one.
    rates = (pipeline_repo / "dvclive/plots/metrics/lr.tsv").read_text().splitlines()
    assert rates[:2] == ["step\tlr", "0\t0.001"]
    assert 0 < json.loads((pipeline_repo / "dvclive/metrics.json").read_text())["lr"] < 1e-6


def test_a_misspelt_optimizer_option_fails_in_one_line_before_training(pipeline_repo):
    result = run(
        ["dvc", "exp", "run", "-S", "+train.optimizer_options.momentun=0.9"],
        pipeline_repo,
        check=False,
    )

    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "error: train.optimizer_options: SGD has no option 'momentun'; did you mean momentum?"
    )
    assert "Epoch: 0" not in result.stdout and "Traceback" not in result.stderr


def test_a_positive_class_weight_trades_precision_for_recall(pipeline_repo):
    """`pos_weight` reaches torch's BCEWithLogitsLoss: on admissions.csv, where the plain loss
    gives precision 0.90 and recall 0.78, a weight of 3 on class 1 turns them round."""
    run(
        ["dvc", "exp", "run", *ADMISSIONS, "-S", "+train.loss_options.pos_weight=3"],
        pipeline_repo,
    )
    metrics = json.loads((pipeline_repo / "metrics/evaluate.json").read_text())
    card = json.loads((pipeline_repo / "models/export/model_card.json").read_text())

    assert metrics["recall"] > 0.9 and metrics["recall"] > metrics["precision"]
    assert card["params"]["train"]["loss_options"] == {"pos_weight": 3}


def test_a_users_own_module_trains_evaluates_exports_and_predicts_by_name(pipeline_repo):
    builder = pipeline_repo / "pytorch_workflow/model_builder.py"
    builder.write_text(builder.read_text() + OWN_MODEL)
    run(["git", "commit", "-q", "-am", "My own model"], pipeline_repo)

    result = run(
        [
            "dvc",
            "exp",
            "run",
            *ADMISSIONS,
            "-S",
            "model.name=AdmissionsNet",
            "-S",
            "+model.options.hidden=8",
        ],
        pipeline_repo,
    )
    metrics = json.loads((pipeline_repo / "metrics/evaluate.json").read_text())
    card = json.loads((pipeline_repo / "models/export/model_card.json").read_text())
    rows = pipeline_repo / "rows.csv"
    rows.write_text("exam_1,exam_2,hours_studied\n90,85,30\n40,45,5\n")
    predicted = predict(pipeline_repo, rows, pipeline_repo / "out.csv", check=True)

    assert re.search(r"Epoch: 150 \| Loss: 0\.\d{5}, Accuracy: \d+\.\d\d%", result.stdout)
    assert metrics["accuracy"] >= metrics["logistic_baseline"]["accuracy"] - 0.05
    assert (card["model"], card["model_options"]) == ("AdmissionsNet", {"hidden": 8})
    assert "layers.0.weight" in card["parameters"]
    # Too many values to list in `dvc exp show`: they stay in model.pt.
    assert "learned" not in json.loads((pipeline_repo / "metrics/train.json").read_text())
    assert "Wrote 2 predictions" in predicted.stdout
    lines = (pipeline_repo / "out.csv").read_text().splitlines()
    assert lines[0] == "exam_1,exam_2,hours_studied,predicted,probability"
    assert float(lines[1].split(",")[-1]) > 0.5 > float(lines[2].split(",")[-1])
    assert [line.split(",")[-2] for line in lines[1:]] == ["1", "0"]

    # The class changed after the export, or a function of the file that it uses through
    # another class: either way its weights would run in other code.
    exported = builder.read_text()
    refused = []
    for old, new in (("nn.ReLU(),\n", "nn.Tanh(),\n"), ("zeros_like(x))", "zeros_like(x) + 1)")):
        builder.write_text(exported.replace(old, new, 1))
        refused.append(predict(pipeline_repo, rows, pipeline_repo / "out.csv"))
    trusted = predict(pipeline_repo, rows, pipeline_repo / "out.csv", "--trust-program")

    for changed in refused:
        assert changed.returncode == 2
        assert "the code of model AdmissionsNet (pytorch_workflow/model_builder.py) changed" in (
            changed.stderr
        )
    assert trusted.returncode == 0 and (pipeline_repo / "out.csv").read_text().splitlines() == lines


def test_a_mistake_in_the_model_file_is_one_line_naming_its_line(pipeline_repo):
    builder = pipeline_repo / "pytorch_workflow/model_builder.py"
    end = builder.read_text().count("\n")
    written = builder.read_text()
    builder.write_text(written + "\nclass Mine(nn.Module):\n    def __init__(self:\n")
    repro = run(["dvc", "repro"], pipeline_repo, check=False)
    builder.write_text(written + "\nimport timmx\n")
    predicted = predict(pipeline_repo, "rows.csv", "out.csv")
    stages = [
        run([sys.executable, "-m", f"stages.{stage}"], pipeline_repo, check=False)
        for stage in ("evaluate", "export")
    ]

    assert repro.returncode != 0 and "Traceback" not in repro.stderr
    assert (
        f"error: pytorch_workflow/model_builder.py, line {end + 3}: SyntaxError: " in repro.stderr
    )
    for result in (predicted, *stages):
        assert result.returncode == 2 and result.stderr == (
            f"error: pytorch_workflow/model_builder.py, line {end + 2}: "
            "ModuleNotFoundError: No module named 'timmx'\n"
        )
