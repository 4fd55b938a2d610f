"""Bad params, data and model files, through the real stage entry points and DVC.

Each case must fail with one line naming the problem, a non-zero exit, no traceback, and
leave every output exactly as it was.
"""

import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import run, tool_env

pytestmark = pytest.mark.slow

OUTPUT_DIRS = ("data", "models", "metrics", "plots")


def outputs_snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(repo)): path.read_bytes()
        for folder in OUTPUT_DIRS
        for path in sorted((repo / folder).rglob("*"))
        if path.is_file()
    }


def set_params(repo: Path, **changes) -> None:
    """Change params.yaml the way `dvc exp run -S key=value` does: one dotted key at a time."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split("__")
        target = params
        for section in sections:
            target = target[section]
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


DELETE = object()


def assert_clean_failure(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for text in expected:
        assert text in error_lines[0], error_lines[0]


def run_stage(repo: Path, stage: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", f"stages.{stage}"], repo, check=False)


def assert_nothing_written(repo: Path, before: dict[str, bytes]) -> None:
    after = outputs_snapshot(repo)
    assert after.keys() == before.keys(), "files appeared or vanished"
    assert [name for name in before if before[name] != after[name]] == []


# (changes to params.yaml, stage to run, text the error must contain)
BAD_PARAMS = [
    ({"train__lr": "abc"}, "train", "train.lr must be a number > 0, got 'abc'"),
    ({"train__lr": 0}, "train", "train.lr must be a number > 0, got 0"),
    ({"train__lr": -0.1}, "train", "train.lr"),
    ({"train__lr": True}, "train", "train.lr"),
    ({"train__epochs": 0}, "train", "train.epochs must be a whole number >= 1, got 0"),
    ({"train__epochs": -5}, "train", "train.epochs"),
    ({"train__epochs": 2.5}, "train", "train.epochs"),
    ({"split__train_fraction": 0}, "split", "split.train_fraction"),
    ({"split__train_fraction": 1.5}, "split", "split.train_fraction"),
    ({"split__train_fraction": 0.01}, "split", "split.train_fraction=0.01 leaves an empty split"),
    ({"split__shuffle": "maybe"}, "split", "split.shuffle must be true or false"),
    ({"data__step": 0}, "prepare", "data.step must be a number > 0"),
    ({"data__step": -0.02}, "prepare", "data.step"),
    ({"data__step": 1e-12}, "prepare", "data.step=1e-12 makes"),
    ({"data__end": 0.0}, "prepare", "data.end must be greater than data.start"),
    ({"data__noise_std": -1}, "prepare", "data.noise_std must be a number >= 0"),
    ({"data__weight": "nan"}, "prepare", "data.weight"),
    ({"model__name": "mlp"}, "train", "model.name must be one of linear_regression"),
    ({"train__loss": "hinge"}, "train", "train.loss must be one of l1, mse, huber"),
    ({"train__optimizer": "rmsprop"}, "train", "train.optimizer must be one of sgd, adam"),
    ({"train__momentum": 1.0}, "train", "train.momentum must be a number >= 0 and < 1"),
    ({"train__momentum": -0.1}, "train", "train.momentum"),
    ({"train__log_every": 0}, "train", "train.log_every must be a whole number >= 1"),
    ({"seed": -1}, "prepare", "seed must be a whole number >= 0, got -1"),
    ({"device": "tpu"}, "evaluate", "device must be auto, cpu, cuda, cuda:N or mps"),
    ({"train__lrr": 0.1}, "train", "unknown key 'train.lrr'; did you mean train.lr?"),
    ({"trian": {}}, "prepare", "unknown key 'trian'; did you mean train"),
    ({"train__epochs": DELETE}, "evaluate", "missing key 'train.epochs'"),
]


@pytest.mark.parametrize(
    ("changes", "stage", "message"),
    BAD_PARAMS,
    ids=[f"{stage}-{'-'.join(changes)}-{i}" for i, (changes, stage, _) in enumerate(BAD_PARAMS)],
)
def test_bad_param_fails_fast_with_one_line(pipeline_repo, changes, stage, message):
    set_params(pipeline_repo, **changes)
    before = outputs_snapshot(pipeline_repo)

    started = time.monotonic()
    result = run_stage(pipeline_repo, stage)
    elapsed = time.monotonic() - started

    assert_clean_failure(result, "params.yaml", message)
    assert_nothing_written(pipeline_repo, before)
    # Checked before torch is imported; generous, as the machine may be busy.
    assert elapsed < 5, f"took {elapsed:.1f}s to report a typo"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "params.yaml: the file is empty"),
        ("- seed\n- device\n", "params.yaml: expected a mapping of keys"),
        ("seed: 42\ntrain: [lr\n", "params.yaml: line 3: YAML syntax error"),
        ("seed: 42\ndata: 7\n", "'data' must be a mapping"),
    ],
)
def test_broken_params_file_is_reported_with_the_file(pipeline_repo, text, message):
    (pipeline_repo / "params.yaml").write_text(text)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "prepare")

    assert_clean_failure(result, message)
    assert_nothing_written(pipeline_repo, before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("stage", ["train", "evaluate", "export"])
def test_missing_cuda_is_an_error_in_every_torch_stage(pipeline_repo, stage):
    set_params(pipeline_repo, device="cuda")
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, stage)

    assert_clean_failure(result, "device: cuda was asked for but CUDA is not available")
    assert_nothing_written(pipeline_repo, before)


def replace_file(path: Path, content: bytes) -> None:
    path.unlink()  # never write through a link into DVC's cache
    path.write_bytes(content)


def write_parquet(path: Path, table: pd.DataFrame) -> None:
    path.unlink()
    table.to_parquet(path, index=False)


def remove_train(repo: Path) -> None:
    (repo / "data/train.parquet").unlink()


def empty_train(repo: Path) -> None:
    replace_file(repo / "data/train.parquet", b"")


def truncate_test(repo: Path) -> None:
    replace_file(repo / "data/test.parquet", (repo / "data/test.parquet").read_bytes()[:100])


def nan_in_train(repo: Path) -> None:
    table = pd.DataFrame({"x": [0.0, 0.1], "y": [0.3, float("nan")]})
    write_parquet(repo / "data/train.parquet", table)


def text_in_dataset(repo: Path) -> None:
    write_parquet(repo / "data/dataset.parquet", pd.DataFrame({"x": ["a", "b"], "y": [1.0, 2.0]}))


def one_row_dataset(repo: Path) -> None:
    write_parquet(repo / "data/dataset.parquet", pd.DataFrame({"x": [0.0], "y": [0.3]}))


def no_target_in_test(repo: Path) -> None:
    write_parquet(repo / "data/test.parquet", pd.DataFrame({"x": [0.5]}))


@pytest.mark.parametrize(
    ("stage", "damage", "message"),
    [
        ("train", remove_train, "data/train.parquet: file not found"),
        ("train", empty_train, "data/train.parquet: not a readable Parquet file"),
        ("evaluate", truncate_test, "data/test.parquet: not a readable Parquet file"),
        (
            "train",
            nan_in_train,
            "data/train.parquet: column y has a NaN or infinite value at row 1",
        ),
        ("split", text_in_dataset, "data/dataset.parquet: column x is not numeric"),
        ("split", one_row_dataset, "leaves an empty split of 1 rows"),
        ("evaluate", no_target_in_test, "data/test.parquet: missing column(s) y"),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_bad_data_files_are_named(pipeline_repo, stage, damage, message):
    damage(pipeline_repo)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, stage)

    assert_clean_failure(result, message)
    assert_nothing_written(pipeline_repo, before)


class WritesMarker:
    """Unpickling this creates a file: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_tampered_model_that_runs_code_is_refused(pipeline_repo, tmp_path):
    marker = tmp_path / "code-ran"
    model = pipeline_repo / "models/model.pt"
    model.unlink()
    torch.save({"weights": torch.zeros(1), "bias": WritesMarker(marker)}, model)
    before = outputs_snapshot(pipeline_repo)

    for stage in ("evaluate", "export"):
        result = run_stage(pipeline_repo, stage)
        assert_clean_failure(result, "models/model.pt: refused to load")
    assert not marker.exists()
    assert_nothing_written(pipeline_repo, before)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda data: data[: len(data) // 2], "models/model.pt: not a readable model file"),
        (lambda data: b"not a model", "models/model.pt: not a readable model file"),
    ],
    ids=["truncated", "garbage"],
)
def test_corrupt_model_file_is_a_clear_error(pipeline_repo, content, message):
    model = pipeline_repo / "models/model.pt"
    replace_file(model, content(model.read_bytes()))
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "evaluate")

    assert_clean_failure(result, message)
    assert_nothing_written(pipeline_repo, before)


def test_state_dict_for_another_model_names_the_keys(pipeline_repo):
    model = pipeline_repo / "models/model.pt"
    model.unlink()
    torch.save(torch.nn.Linear(1, 1).state_dict(), model)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "evaluate")

    assert_clean_failure(result, "state_dict keys ['bias', 'weight'] do not match", "'weights'")
    assert_nothing_written(pipeline_repo, before)


def tamper_program(program: Path, marker: Path) -> None:
    """Rewrite the exported program so its first weight is a pickle that creates `marker`."""
    with zipfile.ZipFile(program) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config_name = next(name for name in members if name.endswith("_weights_config.json"))
    members[config_name] = members[config_name].replace(
        b'"use_pickle": false', b'"use_pickle": true'
    )
    weight_name = next(name for name in members if name.endswith("/weights/weight_0"))
    members[weight_name] = pickle.dumps(WritesMarker(marker))
    program.unlink()
    with zipfile.ZipFile(program, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_tampered_exported_program_is_refused_by_predict(pipeline_repo, tmp_path):
    marker = tmp_path / "code-ran"
    program = pipeline_repo / "models/export/model.pt2"
    tamper_program(program, marker)
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = run(
        [sys.executable, "-m", "pytorch_workflow.predict", str(inputs), str(tmp_path / "out.csv")],
        pipeline_repo,
        check=False,
    )

    assert_clean_failure(result, "model.pt2: refused to load")
    assert not marker.exists()
    assert not (tmp_path / "out.csv").exists()
    # The tampering is real: torch.export.load on its own runs the code.
    subprocess.run(
        [sys.executable, "-c", f"import torch; torch.export.load({str(program)!r})"],
        capture_output=True,
        check=False,
    )
    assert marker.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x\n0.5\nabc\n", "column x row 1 is not a finite number: 'abc'"),
        ("a,b\n1,2\n", "expected column(s) x; missing x"),
        ("x\n", "has no rows"),
    ],
)
def test_predict_names_the_problem_in_the_input_csv(reproduced, tmp_path, text, message):
    repo, _ = reproduced
    inputs = tmp_path / "x.csv"
    inputs.write_text(text)

    result = run(
        [sys.executable, "-m", "pytorch_workflow.predict", str(inputs), str(tmp_path / "out.csv")],
        repo,
        check=False,
    )

    assert_clean_failure(result, "x.csv", message)
    assert not (tmp_path / "out.csv").exists()


def test_diverging_training_stops_before_writing_nan(pipeline_repo):
    set_params(pipeline_repo, train__loss="mse", train__lr=1e6, train__epochs=200)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "train")

    assert_clean_failure(result, "training diverged", "at epoch", "try a smaller train.lr")
    assert_nothing_written(pipeline_repo, before)


def test_dvc_exp_run_with_a_bad_value_fails_naming_it(pipeline_repo):
    result = run(["dvc", "exp", "run", "-S", "train.lr=abc"], pipeline_repo, check=False)

    assert result.returncode != 0
    assert "train.lr must be a number > 0, got 'abc'" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_dvc_exp_run_accepts_a_tiny_lr_written_as_a_string(pipeline_repo):
    # DVC writes 1e-6 as `1e-06`, which YAML reads as a string (dvc issue 5971).
    run(["dvc", "exp", "run", "-S", "train.lr=1e-6"], pipeline_repo)

    assert yaml.safe_load((pipeline_repo / "params.yaml").read_text())["train"]["lr"] == "1e-06"
    metrics = yaml.safe_load((pipeline_repo / "metrics/train.json").read_text())
    assert metrics["epochs"] == 100


def test_dvc_repro_stops_at_the_bad_param(pipeline_repo):
    set_params(pipeline_repo, data__step=0)

    result = run(["dvc", "repro"], pipeline_repo, check=False)

    assert result.returncode != 0
    assert "data.step must be a number > 0, got 0" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_killed_while_writing_leaves_no_complete_looking_file_and_repro_recovers(pipeline_repo):
    set_params(pipeline_repo, data__step=1e-7)  # 10 million rows: writing takes a while
    data_dir = pipeline_repo / "data"
    old_dataset = (data_dir / "dataset.parquet").read_bytes()

    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.prepare"], cwd=pipeline_repo, env=tool_env()
    )
    deadline = time.monotonic() + 120
    while not list(data_dir.glob(".dataset.parquet.*.tmp")):
        assert stage.poll() is None, "prepare finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()

    assert (data_dir / "dataset.parquet").read_bytes() == old_dataset  # not replaced half-way
    assert list(data_dir.glob(".dataset.parquet.*.tmp"))  # the partial file is marked as such

    run(["dvc", "repro", "prepare"], pipeline_repo)
    recovered = (data_dir / "dataset.parquet").read_bytes()
    assert list(data_dir.glob(".*.tmp")) == []
    run(["dvc", "repro", "--force", "prepare"], pipeline_repo)
    assert (data_dir / "dataset.parquet").read_bytes() == recovered
    assert len(pd.read_parquet(data_dir / "dataset.parquet")) == 10_000_000
