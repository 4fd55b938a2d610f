"""The real pipeline: `dvc repro`, experiments and metrics in temporary git copies."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import COURSE_LOG, predict, run
from tests.helpers import split_side

pytestmark = pytest.mark.slow

STAGES = ["prepare", "split", "train", "evaluate", "export"]


def pipeline_paths(repo: Path) -> dict[str, str]:
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    return next(entry["paths"] for entry in pipeline["vars"] if "paths" in entry)


def output_bytes(repo: Path) -> dict[str, bytes]:
    """Every file the pipeline writes, by path, plus dvc.lock."""
    files = {"dvc.lock": (repo / "dvc.lock").read_bytes()}
    for path in pipeline_paths(repo).values():
        target = repo / path
        for file in sorted(target.rglob("*")) if target.is_dir() else [target]:
            if file.is_file():
                files[str(file.relative_to(repo))] = file.read_bytes()
    return files


def test_repro_makes_every_output_and_prints_the_course_log(reproduced):
    repo, result = reproduced

    for stage in STAGES:
        assert f"Running stage '{stage}'" in result.stdout
    for line in COURSE_LOG:
        assert line in result.stdout
    for name, path in pipeline_paths(repo).items():
        assert (repo / path).exists(), name
    assert sorted(p.name for p in (repo / "models/export").iterdir()) == [
        "model.pt",
        "model.pt2",
        "model_card.json",
    ]


def test_fresh_clone_reproduces_the_committed_lock_and_metrics(committed_reproduced):
    repo, _ = committed_reproduced

    status = run(["git", "status", "--porcelain"], repo).stdout

    assert status == "", f"dvc repro changed committed files:\n{status}"
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_the_committed_metrics_hold_no_rounding_noise(reproduced):
    repo, _ = reproduced

    metrics = json.loads((repo / "metrics/evaluate.json").read_text())

    # The closed form fits the noiseless line exactly: no 1e-8 errors, no 2e13 ratio.
    assert metrics["closed_form"] == {"mae": 0.0, "mse": 0.0, "r2": 1.0}
    assert "mse_over_closed_form" not in metrics
    assert json.loads((repo / "metrics/train.json").read_text())["device"] == "cpu"


def test_second_repro_runs_nothing(pipeline_repo):
    result = run(["dvc", "repro"], pipeline_repo)

    assert "Running stage" not in result.stdout
    assert "Data and pipelines are up to date" in result.stdout


def test_forced_repro_writes_identical_bytes(pipeline_repo):
    before = output_bytes(pipeline_repo)

    run(["dvc", "repro", "--force"], pipeline_repo)

    after = output_bytes(pipeline_repo)
    assert after.keys() == before.keys()
    assert [name for name in before if before[name] != after[name]] == []


def test_longer_experiment_lowers_test_loss_and_reruns_only_train_onwards(pipeline_repo):
    before = json.loads((pipeline_repo / "metrics/evaluate.json").read_text())

    result = run(["dvc", "exp", "run", "-S", "train.epochs=200", "evaluate"], pipeline_repo)

    assert "Running stage 'prepare'" not in result.stdout
    assert "Running stage 'split'" not in result.stdout
    assert "Running stage 'train'" in result.stdout
    after = json.loads((pipeline_repo / "metrics/evaluate.json").read_text())
    assert after["mae"] < before["mae"]

    shown = json.loads(run(["dvc", "exp", "show", "--json"], pipeline_repo).stdout)
    experiments = [
        exp for commit in shown for run_ in commit.get("experiments") or [] for exp in run_["revs"]
    ]
    epochs = [
        exp["data"]["params"]["params.yaml"]["data"]["train"]["epochs"] for exp in experiments
    ]
    assert 200 in epochs

    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], pipeline_repo).stdout)
    mae = diff["metrics/evaluate.json"]["mae"]
    assert mae["old"] == before["mae"] and mae["new"] == after["mae"] and mae["diff"] < 0


def test_the_exported_program_runs_without_this_repository(reproduced, tmp_path):
    repo, _ = reproduced
    bundle = repo / "models/export"
    test_x = split_side(repo, "test")["x"]
    evaluated = pd.read_parquet(repo / "data/test_predictions.parquet")["output"]
    script = (
        "import json, sys, torch\n"
        "sd = torch.load(sys.argv[1] + '/model.pt', weights_only=True)\n"
        "program = torch.export.load(sys.argv[1] + '/model.pt2').module()\n"
        "x = torch.tensor(json.loads(sys.argv[2]), dtype=torch.float32).reshape(-1, 1)\n"
        "print(json.dumps([sorted(sd), program(x).reshape(-1).tolist()]))\n"
    )
    # -I: isolated mode, so nothing of this repository is importable.
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, str(bundle), json.dumps(test_x.tolist())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )

    keys, predictions = json.loads(result.stdout)
    assert keys == ["bias", "weights"]
    assert predictions == evaluated.tolist()
    card = json.loads((bundle / "model_card.json").read_text())
    assert card["model"] == "linear_regression" and card["device"] == "cpu"
    assert card["parameters"] == {"weights": [1], "bias": [1]}
    assert set(card["sha256"]) == {"dataset", "split", "model"}
    assert card["metrics"] == json.loads((repo / "metrics/evaluate.json").read_text())


def test_predict_writes_the_input_columns_and_a_prediction_for_each_row(reproduced, tmp_path):
    repo, _ = reproduced
    inputs = tmp_path / "x.csv"
    inputs.write_text("id,x\na,0.0\nb,0.5\nc,1.0\n")
    outputs = tmp_path / "predictions.csv"

    predict(repo, inputs, outputs, check=True)

    table = pd.read_csv(outputs)
    assert list(table.columns) == ["id", "x", "prediction"]
    assert list(table["id"]) == ["a", "b", "c"]
    learned = json.loads((repo / "metrics/train.json").read_text())["learned"]
    expected = learned["weights"] * table["x"] + learned["bias"]
    assert table["prediction"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_export_refuses_a_bundle_that_predicts_differently(pipeline_repo):
    predictions = pipeline_repo / "data/test_predictions.parquet"
    table = pd.read_parquet(predictions)
    table.loc[3, "output"] += 1e-3
    predictions.unlink()  # DVC may have linked it to the cache
    table.to_parquet(predictions, index=False)
    old_card = (pipeline_repo / "models/export/model_card.json").read_bytes()

    result = run([sys.executable, "-m", "stages.export"], pipeline_repo, check=False)

    assert result.returncode == 2
    assert "export check failed" in result.stderr and "1 of 10" in result.stderr
    assert "Traceback" not in result.stderr
    assert (pipeline_repo / "models/export/model_card.json").read_bytes() == old_card
    assert list((pipeline_repo / "models").glob(".export*")) == []


def test_every_module_a_stage_imports_is_one_of_its_deps(fresh_repo):
    pipeline = yaml.safe_load((fresh_repo / "dvc.yaml").read_text())
    for stage in STAGES:
        probe = (
            f"import sys, stages.{stage}\n"
            "for m in list(sys.modules.values()):\n"
            "    f = getattr(m, '__file__', None) or ''\n"
            "    if f.startswith(sys.argv[1]): print(f[len(sys.argv[1]) + 1:])\n"
        )
        imported = run([sys.executable, "-c", probe, str(fresh_repo)], fresh_repo).stdout.split()
        deps = set(pipeline["stages"][stage]["deps"])
        missing = sorted(set(imported) - deps - {"stages/__init__.py"})
        assert missing == [], f"stage {stage} imports {missing} but does not list them in deps"


def test_dvclive_records_the_losses_at_each_log_line_and_the_last_epoch(reproduced):
    repo, _ = reproduced

    live = json.loads((repo / "dvclive/metrics.json").read_text())
    losses = pd.read_csv(repo / "plots/loss.csv")
    rows = (repo / "dvclive/plots/metrics/test_loss.tsv").read_text().splitlines()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)

    assert live == {
        "step": 99,
        "train_loss": losses.train_loss.iloc[-1],
        "test_loss": losses.test_loss.iloc[-1],
    }
    assert rows[0] == "step\ttest_loss"
    assert [row.split("\t")[0] for row in rows[1:]] == [*map(str, range(0, 100, 10)), "99"]
    assert "dvclive/metrics.json" in json.dumps(shown)
