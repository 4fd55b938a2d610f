"""Training with torchrun: several processes, two "machines" on 127.0.0.1, a process that dies."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytorch_workflow.distributed import root_cause
from tests.conftest import clone_copy, run, start_stage, tool_env
from tests.test_bad_inputs import assert_clean_failure, set_params
from tools.tolerance import largest_difference, load_tolerance, numbers_of

pytestmark = pytest.mark.slow

# 8,000 train rows in 8 chunks.
CHUNKED = {
    "data__step": 1e-4,
    "data__chunk_rows": 1000,
    "data__noise_std": 0.05,
    "train__epochs": 10,
}
OUTPUTS = (
    "models/model.pt",
    "plots/loss.csv",
    "metrics/evaluate.json",
    "data/test_predictions.parquet",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chunked(reproduced, tmp_path_factory) -> Path:
    """The noisy line in 8-chunk splits, trained by one process."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("chunked") / "repo")
    set_params(repo, **CHUNKED)
    run(["dvc", "repro"], repo)
    return repo


def files(repo: Path) -> dict[str, bytes]:
    return {name: (repo / name).read_bytes() for name in OUTPUTS}


def recorded(repo: Path) -> dict[str, float]:
    """The numbers `make lock-check` compares: metrics and plot tables."""
    numbers = {}
    for name in ("metrics/train.json", "metrics/evaluate.json", "plots/loss.csv"):
        numbers.update(numbers_of(name, (repo / name).read_text()))
    return numbers


def test_two_processes_agree_with_one_and_write_the_same_bytes_again(chunked, tmp_path):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2)

    result = run(["dvc", "repro"], repo)
    first = files(repo)
    run(["dvc", "repro", "--force", "--single-item", "train"], repo)

    assert "Using device: cpu (1 thread), 2 processes" in result.stdout
    assert files(repo) == first
    assert json.loads((repo / "metrics/train.json").read_text())["processes"] == 2
    # DistributedDataParallel averages the processes' gradients: the sums are grouped
    # differently from one process's, within the declared tolerance.
    _, _, outside = largest_difference(recorded(chunked), recorded(repo), load_tolerance())
    assert outside == []


@pytest.mark.parametrize(("data", "batch_size"), [("chunked", 500), ("course", 3)])
def test_mini_batches_over_two_processes_agree_with_one(
    chunked, reproduced, tmp_path, data, batch_size
):
    # The course's 40 train rows in batches of 3: one process takes 1 row of each, the other 2,
    # and in the last batch of 1 row one process has none: it still steps, on a row that
    # weighs nothing.
    numbers = {}
    for processes in (1, 2):
        source = chunked if data == "chunked" else reproduced[0]
        repo = clone_copy(source, tmp_path / f"repo-{processes}")
        set_params(repo, train__processes=processes, train__batch_size=batch_size, train__epochs=5)
        run([sys.executable, "-m", "stages.train"], repo)
        trained = json.loads((repo / "metrics/train.json").read_text())
        assert trained["processes"] == processes
        numbers[processes] = trained["learned"]

    assert numbers[2] == pytest.approx(numbers[1], rel=load_tolerance().relative)


def test_the_course_on_two_processes_splits_its_one_chunk(reproduced, tmp_path):
    repo = clone_copy(reproduced[0], tmp_path / "repo")
    set_params(repo, train__processes=2)

    result = run(["dvc", "repro"], repo)

    _, _, outside = largest_difference(recorded(reproduced[0]), recorded(repo), load_tolerance())
    assert "Using device: cpu (1 thread), 2 processes" in result.stdout
    assert outside == []


def test_two_machines_on_loopback_train_together_and_each_writes_the_model(chunked, tmp_path):
    first, second = (
        clone_copy(chunked, tmp_path / "first"),
        clone_copy(chunked, tmp_path / "second"),
    )
    rendezvous = {
        "PET_NNODES": "2",
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": f"127.0.0.1:{free_port()}",
    }
    for repo in (first, second):
        (repo / "models/model.pt").unlink()
    # The second machine runs the stage itself; the first runs it through dvc repro.
    other = start_stage("train", second, env={**tool_env(), **rendezvous})
    result = run(["dvc", "repro", "train"], first, env={**tool_env(), **rendezvous})
    _, errors = other.communicate(timeout=120)

    assert other.returncode == 0, errors
    assert "Using device: cpu (2 threads), 2 processes" in result.stdout
    two_processes = clone_copy(chunked, tmp_path / "two")
    set_params(two_processes, train__processes=2)
    run([sys.executable, "-m", "stages.train"], two_processes)
    # One process on each of two machines: the same model as two processes on one.
    for repo in (first, second):
        model = (repo / "models/model.pt").read_bytes()
        assert model == (two_processes / "models/model.pt").read_bytes()


def training_processes(stage: subprocess.Popen) -> dict[str, psutil.Process]:
    """The stage's training processes by rank, once process 1 has trained for a CPU second."""
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and stage.poll() is None
        ranks = {}
        for process in psutil.Process(stage.pid).children(recursive=True):
            try:
                if (rank := process.environ().get("RANK")) is not None:
                    ranks[rank] = process
                if len(ranks) == 2 and ranks["1"].cpu_times().user > 1:
                    return ranks
            except psutil.Error:
                pass
        time.sleep(0.2)


def test_a_process_that_dies_fails_the_stage_in_one_line_and_writes_nothing(chunked, tmp_path):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2, train__epochs=100_000)
    before = files(repo)
    stage = start_stage("train", repo)
    os.kill(training_processes(stage)["1"].pid, signal.SIGKILL)
    stdout, stderr = stage.communicate(timeout=120)

    assert_clean_failure(
        subprocess.CompletedProcess(stage.args, stage.returncode, stdout, stderr),
        "train: training process 1 was killed by SIGKILL; the stage wrote nothing",
    )
    assert files(repo) == before
    assert list(repo.rglob("*.tmp")) == []


def test_an_error_in_every_process_is_one_line_and_dvclive_is_put_back_once(reproduced, tmp_path):
    # Both processes diverge together: each raises the same error, and only the stage that
    # started torchrun puts DVCLive's files back (they used to race to do it).
    repo = clone_copy(reproduced[0], tmp_path / "repo")
    set_params(repo, train__processes=2, train__loss="mse", train__lr=1000)
    live = {path: path.read_bytes() for path in (repo / "dvclive").rglob("*") if path.is_file()}

    for _ in range(3):
        result = run([sys.executable, "-m", "stages.train"], repo, check=False)

        assert_clean_failure(result, "error: training diverged: the MSE loss became")
        assert result.stderr.count("error:") == 1
        now = {path: path.read_bytes() for path in (repo / "dvclive").rglob("*") if path.is_file()}
        assert now == live


@pytest.mark.parametrize("stop", ["Ctrl-C in a terminal", "SIGTERM"])
def test_a_stopped_stage_stops_its_training_processes_and_keeps_the_outputs(
    chunked, tmp_path, stop
):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2, train__epochs=100_000)
    before = files(repo)
    stage = start_stage("train", repo)
    workers = training_processes(stage).values()
    if stop == "SIGTERM":  # the stage alone: a cancelled job, a killed `dvc repro`
        stage.send_signal(signal.SIGTERM)
    else:  # the terminal's process group: the stage and torchrun, not the training processes
        os.killpg(stage.pid, signal.SIGINT)
    _, stderr = stage.communicate(timeout=120)

    assert stage.returncode == 130
    assert stderr == "error: interrupted; the outputs are as they were\n"
    # None trains on to write the outputs after the stage said it wrote nothing.
    _, training_on = psutil.wait_procs(workers, timeout=1)
    for process in training_on:
        process.kill()
    assert training_on == []
    assert files(repo) == before


def test_more_machines_with_nowhere_to_meet_fail_at_once_in_one_line(reproduced, tmp_path):
    repo = clone_copy(reproduced[0], tmp_path / "repo")

    more_machines = {**tool_env(), "PET_NNODES": "2"}

    result = run([sys.executable, "-m", "stages.train"], repo, check=False, env=more_machines)

    assert_clean_failure(result, "error: PET_NNODES=2: the machines need a place to meet; set")


def test_machines_that_never_meet_are_named_as_such_after_the_timeout(reproduced, tmp_path):
    repo = clone_copy(reproduced[0], tmp_path / "repo")
    endpoint = f"127.0.0.1:{free_port()}"
    alone = {
        **tool_env(),
        "PET_NNODES": "2",
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": endpoint,
        "PET_RDZV_CONF": "join_timeout=5",  # the other machine never starts
    }

    result = run([sys.executable, "-m", "stages.train"], repo, check=False, env=alone)

    assert_clean_failure(
        result,
        f"error: train: the machines (PET_NNODES=2) did not all meet at {endpoint} in time "
        "(torchrun's RendezvousTimeoutError)",
    )


# torchrun's report of a run in which process 1 raised, shortened: each process's traceback,
# its lines prefixed with its rank, then torchrun's summary.
FAILED_RUN = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "/repo/pytorch_workflow/engine.py", line 200, in closure
[rank1]: AssertionError: boom on rank 1
[rank0]: RuntimeError: [gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:38541.
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 17392)  (SIGTERM)
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 17393)
"""


def test_a_process_that_raises_is_named_with_its_exception():
    assert root_cause(FAILED_RUN) == (
        "training process 1 exited with status 1 (AssertionError: boom on rank 1)"
    )
    # Before a process joins the group, torch does not prefix its lines yet.
    before_joining = FAILED_RUN.replace("[rank1]: ", "")
    assert root_cause(before_joining).endswith("(AssertionError: boom on rank 1)")
