"""Bad params, data and model files, through the real stage entry points and DVC.

Each case must fail with one line naming the problem, a non-zero exit, no traceback, and
leave every output exactly as it was.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import run, start_stage, tool_env

pytestmark = pytest.mark.slow

OUTPUT_DIRS = ("data", "models", "metrics", "plots")


# What docs/errors.md restores from git after a failed run: dvc.lock too, which records the
# stages that ran before the failure.
RESTORED_AFTER_A_FAILURE = ["dvc.lock", "metrics", "plots", "dvclive"]


def outputs_snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(repo)): path.read_bytes()
        for folder in OUTPUT_DIRS
        for path in sorted((repo / folder).rglob("*"))
        if path.is_file()
    }


DELETE = object()


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
    ({"train__lr": "abc"}, "train", "train.lr must be a number > 0 and <= 1e+06, got 'abc'"),
    ({"train__lr": 0}, "train", "train.lr must be a number > 0"),
    ({"train__lr": True}, "train", "train.lr"),
    ({"train__epochs": 0}, "train", "train.epochs must be a whole number >= 1"),
    ({"train__epochs": 1e12}, "train", "<= 1,000,000, got 1000000000000.0"),
    ({"split__train_fraction": 1.5}, "split", "split.train_fraction"),
    ({"split__train_fraction": 0.01}, "split", "split.train_fraction=0.01 leaves an empty split"),
    ({"split__shuffle": "maybe"}, "split", "split.shuffle must be true or false"),
    ({"data__step": 0}, "prepare", "data.step must be a number > 0"),
    ({"data__step": 1e-12}, "prepare", "data.step=1e-12 makes 1,000,000,000,000 rows"),
    ({"data__step": 5e-324}, "prepare", "makes more than 1e+308 rows"),
    ({"data__start": -1e308}, "prepare", "makes more than 1e+308 rows"),
    ({"data__end": 0.0}, "prepare", "data.end must be greater than data.start"),
    ({"data__noise_std": -1}, "prepare", "data.noise_std must be a number >= 0"),
    ({"data__weight": "nan"}, "prepare", "data.weight"),
    ({"seed": -1}, "prepare", "seed must be a whole number >= 0"),
    ({"seed": 1e20}, "train", "seed must be a whole number >= 0 and <= 4,294,967,295, got 1e+20"),
    ({"train__loss": "hinge"}, "train", "train.loss must be one of l1, mse, huber"),
    ({"train__log_every": 0}, "train", "train.log_every must be a whole number >= 1"),
    ({"device": "tpu"}, "evaluate", "device must be cpu, auto, cuda, cuda:N or mps, got 'tpu'"),
    ({"device": "cuda:²"}, "export", "got 'cuda:²'"),
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


# Classes are torch's and the user's: they are found by name once torch is imported, still
# before anything trains or is written.
BAD_CLASSES = [
    ({"model__name": "mlpp"}, "model.name: no class 'mlpp' in pytorch_workflow/model_builder.py"),
    ({"model__options": {"in_features": 2}}, "model.options.in_features: the pipeline sets"),
    ({"train__optimizer": "adamm"}, "train.optimizer: no class 'adamm' in torch.optim"),
    ({"train__optimizer_options": {"momentum": -1}}, "SGD refused {'momentum': -1}"),
    ({"train__scheduler": "steplr"}, "train.scheduler_options: StepLR failed with no options"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_CLASSES)
def test_a_class_or_option_that_torch_refuses_is_one_line_before_training(
    pipeline_repo, changes, message
):
    set_params(pipeline_repo, **changes)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "train")

    assert_clean_failure(result, message)
    assert "Epoch: 0" not in result.stdout
    assert_nothing_written(pipeline_repo, before)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "params.yaml: the file is empty"),
        ("- seed\n- device\n", "params.yaml: expected a mapping of keys"),
        ("seed: 42\ntrain: [lr\n", "params.yaml: line 3: YAML syntax error"),
        ("seed: 42\ndata: 7\n", "'data' must be a mapping"),
        ('a: &a ["lol", "lol"]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n', "YAML alias *a"),
        ("seed: " + "[" * 30_000 + "]" * 30_000 + "\n", "nested more than 8 levels deep"),
    ],
    ids=["empty", "list", "syntax", "section", "billion-laughs", "deep"],
)
def test_broken_params_file_is_reported_with_the_file(pipeline_repo, text, message):
    (pipeline_repo / "params.yaml").write_text(text)
    before = outputs_snapshot(pipeline_repo)

    for stage in ("prepare", "train"):
        assert_clean_failure(run_stage(pipeline_repo, stage), message)
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


def remove_split(repo: Path) -> None:
    (repo / "data/split.parquet").unlink()


def empty_split(repo: Path) -> None:
    replace_file(repo / "data/split.parquet", b"")


def split_of_another_dataset(repo: Path) -> None:
    write_parquet(repo / "data/split.parquet", pd.DataFrame({"train": [True, False]}))


def split_without_counts(repo: Path) -> None:
    write_parquet(repo / "data/split.parquet", pd.DataFrame({"train": [True] * 40 + [False] * 10}))


def truncate_dataset(repo: Path) -> None:
    replace_file(repo / "data/dataset.parquet", (repo / "data/dataset.parquet").read_bytes()[:100])


def nan_in_train(repo: Path) -> None:
    dataset = pd.read_parquet(repo / "data/dataset.parquet")
    dataset.loc[1, "y"] = float("nan")
    write_parquet(repo / "data/dataset.parquet", dataset)


def text_in_dataset(repo: Path) -> None:
    write_parquet(repo / "data/dataset.parquet", pd.DataFrame({"x": ["a", "b"], "y": [1.0, 2.0]}))


def one_row_dataset(repo: Path) -> None:
    write_parquet(
        repo / "data/dataset.parquet", pd.DataFrame({"x": [0.0], "y": [0.3]}, dtype="float32")
    )


def no_target_in_dataset(repo: Path) -> None:
    dataset = pd.read_parquet(repo / "data/dataset.parquet")
    write_parquet(repo / "data/dataset.parquet", dataset[["x"]])


def zero_std_features(repo: Path) -> None:
    replace_file(
        repo / "data/features.json",
        b'{"features": ["x"], "target": "y", "mean": [0.5], "std": [0.0]}',
    )


def torn_loss_table(repo: Path) -> None:
    (repo / "plots/loss.csv").write_text("epoch,train_loss,test_loss\n0,0.3,\n")


def truncated_metrics(repo: Path) -> None:
    (repo / "metrics/evaluate.json").write_text('{"mae": 0.05')


@pytest.mark.parametrize(
    ("stage", "damage", "message"),
    [
        ("train", remove_split, "data/split.parquet: file not found"),
        ("train", empty_split, "data/split.parquet: not a readable Parquet file"),
        (
            "evaluate",
            split_of_another_dataset,
            "data/split.parquet: not the split of data/dataset.parquet",
        ),
        (
            "export",
            split_without_counts,
            "data/split.parquet: not the split of data/dataset.parquet (its footer does not count",
        ),
        ("evaluate", truncate_dataset, "data/dataset.parquet: not a readable Parquet file"),
        (
            "train",
            nan_in_train,
            "data/dataset.parquet: column y has a NaN or infinite value at row 1",
        ),
        ("split", text_in_dataset, "data/dataset.parquet: column x is not numeric"),
        ("split", one_row_dataset, "leaves an empty split of 1 rows"),
        ("evaluate", no_target_in_dataset, "data/dataset.parquet: missing column(s) y"),
        (
            "train",
            zero_std_features,
            "data/features.json: feature 'x' needs a finite mean and a std > 0",
        ),
        ("evaluate", torn_loss_table, "plots/loss.csv: row 1 is not 3 finite numbers"),
        ("export", truncated_metrics, "metrics/evaluate.json: not readable metrics"),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_bad_data_files_are_named_before_anything_is_written(pipeline_repo, stage, damage, message):
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
        assert_clean_failure(run_stage(pipeline_repo, stage), "models/model.pt: refused to load")
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

    assert_clean_failure(run_stage(pipeline_repo, "evaluate"), message)
    assert_nothing_written(pipeline_repo, before)


def test_state_dict_for_another_model_names_the_keys(pipeline_repo):
    model = pipeline_repo / "models/model.pt"
    model.unlink()
    torch.save(torch.nn.Linear(1, 1).state_dict(), model)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "evaluate")

    assert_clean_failure(result, "state_dict keys ['bias', 'weight'] do not match", "'weights'")
    assert_nothing_written(pipeline_repo, before)


def test_diverging_training_stops_before_writing_nan(pipeline_repo):
    set_params(pipeline_repo, train__loss="mse", train__lr=1e6, train__epochs=200)
    before = outputs_snapshot(pipeline_repo)

    result = run_stage(pipeline_repo, "train")

    assert_clean_failure(result, "training diverged", "at epoch", "try a smaller train.lr")
    assert_nothing_written(pipeline_repo, before)


def test_dvc_repro_stops_at_the_bad_param(pipeline_repo):
    set_params(pipeline_repo, data__step=0)

    result = run(["dvc", "repro"], pipeline_repo, check=False)

    assert result.returncode != 0
    assert "data.step must be a number > 0, got 0" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


UNDO = "restore the committed file with `git show HEAD:./params.yaml > params.yaml`"


def test_dvc_exp_run_with_a_bad_value_fails_naming_it_and_how_to_undo_it(pipeline_repo):
    committed = (pipeline_repo / "params.yaml").read_text()
    result = run(["dvc", "exp", "run", "-S", "seed=-1"], pipeline_repo, check=False)

    assert_clean_failure(result, "seed must be a whole number >= 0", "(seed, was 42)", UNDO)
    # DVC keeps the value in params.yaml (and, as "seed: 42" and "seed: -1" have the same size,
    # leaves git's index believing the file unchanged); the hint's command restores it.
    assert "seed: -1" in (pipeline_repo / "params.yaml").read_text()
    run(["sh", "-c", "git show HEAD:./params.yaml > params.yaml"], pipeline_repo)
    assert (pipeline_repo / "params.yaml").read_text() == committed
    run(["dvc", "exp", "run", "-S", "train.epochs=101", "train"], pipeline_repo)  # runs again


def test_a_failed_dvc_exp_run_names_every_key_it_leaves_changed_whatever_failed(pipeline_repo):
    params_file = pipeline_repo / "params.yaml"
    # A value refused only together with another key (a check across fields).
    across = run(["dvc", "exp", "run", "-S", "data.end=0.0"], pipeline_repo, check=False)
    assert_clean_failure(across, "data.end must be greater than data.start", "(data.end, was 1")
    assert UNDO in across.stderr
    run(["sh", "-c", "git show HEAD:./params.yaml > params.yaml"], pipeline_repo)

    # An edit by hand is named too: going back to the commit would drop it.
    params_file.write_text(params_file.read_text().replace("epochs: 100", "epochs: 150"))
    edited = run(["dvc", "exp", "run", "-S", "seed=-1"], pipeline_repo, check=False)
    assert_clean_failure(edited, "(seed, was 42; train.epochs, was 100)", UNDO)


def test_an_option_left_from_another_run_is_removed_as_the_error_says(pipeline_repo):
    params_file = pipeline_repo / "params.yaml"
    # Options that the next run cannot take, left in params.yaml by the runs before.
    hidden = run(["dvc", "exp", "run", "-S", "+model.options.hidden=8"], pipeline_repo, check=False)
    assert_clean_failure(
        hidden,
        "model.options: LinearRegressionModel has no option 'hidden'; its options: none "
        "(where one is left from another run, -S model.options=null empties model.options)",
    )
    t_max = ["dvc", "exp", "run", "-S", "+train.scheduler_options.T_max=5"]
    assert_clean_failure(
        run(t_max, pipeline_repo, check=False),
        "train.scheduler_options need a train.scheduler; it is null "
        "(-S train.scheduler_options=null empties them)",
    )
    emptied = run(
        ["dvc", "exp", "run", "-S", "train.scheduler_options=null"], pipeline_repo, check=False
    )
    assert_clean_failure(emptied, "LinearRegressionModel has no option 'hidden'")

    run(["dvc", "exp", "run", "-S", "model.options=null", "train"], pipeline_repo)
    params = yaml.safe_load(params_file.read_text())
    assert params["model"]["options"] is None and params["train"]["scheduler_options"] is None


def test_a_failed_dvc_exp_run_in_a_copy_gives_no_undo_hint_for_the_untouched_workspace(
    pipeline_repo,
):
    committed = (pipeline_repo / "params.yaml").read_text()
    copy = run(["dvc", "exp", "run", "--temp", "-S", "seed=-1"], pipeline_repo, check=False)
    assert_clean_failure(copy, "seed must be a whole number >= 0")
    assert "changed from the last commit" not in copy.stderr
    assert (pipeline_repo / "params.yaml").read_text() == committed

    # Outside an experiment a bad value is only named.
    (pipeline_repo / "params.yaml").write_text(committed.replace("seed: 42", "seed: -1"))
    plain = run(["dvc", "repro"], pipeline_repo, check=False)
    assert "seed must be a whole number" in plain.stderr
    assert "changed from the last commit" not in plain.stderr


def test_dvc_exp_run_with_an_unknown_key_is_refused_by_dvc_first(pipeline_repo):
    typo = run(["dvc", "exp", "run", "-S", "train.lrr=0.1"], pipeline_repo, check=False)
    added = run(["dvc", "exp", "run", "-S", "+train.lrr=0.1"], pipeline_repo, check=False)

    assert typo.returncode != 0 and "Could not override 'train.lrr'" in typo.stderr
    assert_clean_failure(added, "unknown key 'train.lrr'; did you mean train.lr?")


def test_dvc_exp_run_accepts_a_tiny_lr_written_as_a_string(pipeline_repo):
    # DVC writes 1e-6 as `1e-06`, which YAML reads as a string (dvc issue 5971).
    run(["dvc", "exp", "run", "-S", "train.lr=1e-6", "train"], pipeline_repo)

    assert yaml.safe_load((pipeline_repo / "params.yaml").read_text())["train"]["lr"] == "1e-06"


def test_a_stage_that_fails_under_dvc_repro_loses_its_outputs_and_dvc_checkout_restores_them(
    pipeline_repo,
):
    committed = outputs_snapshot(pipeline_repo)
    # prepare and split run, and dvc.lock records their new outputs; then train fails.
    set_params(pipeline_repo, data__noise_std=0.01, train__loss="mse", train__lr=1e6)

    failed = run(["dvc", "repro"], pipeline_repo, check=False)
    lost = not (pipeline_repo / "models/model.pt").exists()
    # docs/errors.md: undo the change, then take git's and DVC's copies of the outputs.
    run(["bash", "-c", "git show HEAD:./params.yaml > params.yaml"], pipeline_repo)
    run(["git", "checkout", "--", *RESTORED_AFTER_A_FAILURE], pipeline_repo)
    run(["dvc", "checkout"], pipeline_repo)

    assert failed.returncode != 0 and "training diverged" in failed.stderr
    assert lost  # DVC deletes a stage's outputs before it runs the stage
    assert outputs_snapshot(pipeline_repo) == committed
    assert run(["git", "status", "--porcelain"], pipeline_repo).stdout == ""
    assert "up to date" in run(["dvc", "status"], pipeline_repo).stdout


def test_killed_while_writing_leaves_no_complete_looking_file_and_repro_recovers(pipeline_repo):
    set_params(pipeline_repo, data__step=1e-7)  # 10 million rows: writing takes a while
    data_dir = pipeline_repo / "data"
    old_dataset = (data_dir / "dataset.parquet").read_bytes()

    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.prepare"], cwd=pipeline_repo, env=tool_env()
    )
    # Killed as soon as its temporary file appears: a fixed wait could outlast the whole write
    # on a fast or a busy machine.
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


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_ctrl_c_while_training_is_one_line_and_keeps_the_outputs(pipeline_repo, stop):
    set_params(pipeline_repo, train__epochs=100_000)
    before = outputs_snapshot(pipeline_repo)
    stage = start_stage("train", pipeline_repo)
    # Interrupted once it trains: its first log line is out.
    assert stage.stdout is not None
    for line in stage.stdout:
        if line.startswith("Epoch: 0"):
            break
    stage.send_signal(stop)
    _, stderr = stage.communicate(timeout=60)

    assert stage.returncode == 130
    assert stderr.strip() == "error: interrupted; the outputs are as they were"
    assert outputs_snapshot(pipeline_repo) == before
    assert list(pipeline_repo.rglob("*.tmp")) == []


def test_a_write_the_machine_refuses_is_one_line_naming_the_path(pipeline_repo):
    # A file where the metrics folder should be: the OS refuses to make the folder, as it
    # refuses a write to a read-only folder or a full disk (which root, running the tests,
    # cannot be shown).
    metrics = (pipeline_repo / "metrics").rename(pipeline_repo / "metrics-moved")
    (pipeline_repo / "metrics").write_text("not a folder")

    result = run([sys.executable, "-m", "stages.evaluate"], pipeline_repo, check=False)

    assert_clean_failure(result, "error: metrics: File exists")
    assert result.returncode == 2 and (metrics / "evaluate.json").is_file()


def test_a_classification_task_on_the_courses_line_is_refused_before_anything_runs(
    pipeline_repo,
):
    set_params(pipeline_repo, task="binary_classification", train__loss="bce")

    result = run([sys.executable, "-m", "stages.prepare"], pipeline_repo, check=False)

    assert_clean_failure(result, "task: binary_classification needs class labels")
