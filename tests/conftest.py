"""Shared fixtures: temporary git copies of this repository, with the real DVC pipeline."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from filelock import FileLock

from tests.helpers import COURSE_PARAMS

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# The committed params.yaml, as read. Only the tests of what is committed (the lock, the metrics,
# the docs' commands) use it; the course's numbers come from COURSE_PARAMS, whatever a fork commits.
DEFAULTS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
COMMITTED_ARE_THE_COURSE = DEFAULTS == COURSE_PARAMS

# The course's log, epochs 0 to 90, as printed in the course's notebook.
COURSE_LOG = [
    "Epoch: 0 | MAE Train Loss: 0.31288138031959534 | MAE Test Loss: 0.48106518387794495",
    "Epoch: 10 | MAE Train Loss: 0.1976713240146637 | MAE Test Loss: 0.3463551998138428",
    "Epoch: 20 | MAE Train Loss: 0.08908725529909134 | MAE Test Loss: 0.21729660034179688",
    "Epoch: 30 | MAE Train Loss: 0.053148526698350906 | MAE Test Loss: 0.14464017748832703",
    "Epoch: 40 | MAE Train Loss: 0.04543796554207802 | MAE Test Loss: 0.11360953003168106",
    "Epoch: 50 | MAE Train Loss: 0.04167863354086876 | MAE Test Loss: 0.09919948130846024",
    "Epoch: 60 | MAE Train Loss: 0.03818932920694351 | MAE Test Loss: 0.08886633068323135",
    "Epoch: 70 | MAE Train Loss: 0.03476089984178543 | MAE Test Loss: 0.0805937647819519",
    "Epoch: 80 | MAE Train Loss: 0.03132382780313492 | MAE Test Loss: 0.07232122868299484",
    "Epoch: 90 | MAE Train Loss: 0.02788739837706089 | MAE Test Loss: 0.06473556160926819",
]

# The test files that take longest, longest first. pytest-xdist hands whole files to the test
# processes in collection order (`make test` turns off its reordering by test count), so these
# start first and none of them starts last while the other processes have nothing left to do.
# The order is each file's time under `make test` (`--durations=0`, summed by file); a file that
# takes more than half a minute belongs here.
LONGEST_FIRST = [
    "test_bad_inputs.py",
    "test_reproducibility.py",
    "test_experiments.py",
    "test_distributed.py",
    "test_own_data.py",
    "test_chapter02.py",
    "test_predict.py",
    "test_review.py",
    "test_scale.py",
    "test_torch_choices.py",
    "test_docs.py",
    "test_pipeline.py",
    "test_security.py",
    "test_remote_s3.py",
    "test_registry.py",
    "test_properties.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


# What a corrupted object holds in the remote tests: bytes that do not hash to its name.
CORRUPTED_BYTES = b"not a model"


def tool_env() -> dict[str, str]:
    """The environment for DVC and the stages: this venv first, no network chatter."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command as a user would; on an unexpected failure, show what it printed."""
    result = subprocess.run(
        args, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def predict(repo: Path, *args: str | Path, check: bool = False) -> subprocess.CompletedProcess:
    """`python -m pytorch_workflow.predict ARGS` in `repo`, as a user types it."""
    command = [sys.executable, "-m", "pytorch_workflow.predict", *map(str, args)]
    return run(command, repo, check=check)


# Stages a test started and left running; killed when the test ends (`_no_stage_left_running`).
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_stage_left_running() -> Iterator[None]:
    """A test that fails half-way leaves no stage it started running, nor what the stage
    started (torchrun and its training processes)."""
    yield
    while _STARTED:
        _kill_with_its_processes(_STARTED.pop().pid)


def _kill_with_its_processes(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=10)


def start_stage(stage: str, repo: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A stage started as `python -m stages.STAGE`, its output piped as text, left running,
    and interruptible by Ctrl-C (SIGINT) as in a terminal. It starts a process group of its
    own, as a terminal's command does: `os.killpg(stage.pid, SIGINT)` is a terminal's Ctrl-C,
    which reaches the stage and the processes it starts in its group."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=repo,
        env=env or tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # A test run started in the background (`make test &` in a script) ignores SIGINT, and
        # a process inherits that: Python would never raise KeyboardInterrupt. Only then is
        # the default put back, in the child before it starts (`preexec_fn`, which Python's
        # docs warn may deadlock where threads run: a single `signal` call, kept to that case).
        preexec_fn=_interrupted_by_ctrl_c if _ctrl_c_ignored() else None,
    )
    _STARTED.append(process)
    return process


def _ctrl_c_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def _interrupted_by_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def imported(code: str, modules: tuple[str, ...], cwd: Path = REPO_ROOT) -> list[str]:
    """Which of `modules` a fresh Python has imported after running `code` in `cwd`."""
    probe = f"import sys\n{code}\nprint(*[m for m in {modules!r} if m in sys.modules])"
    return run([sys.executable, "-c", probe], cwd).stdout.split()


def make(target: list[str], repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    """A make target as a user runs it; -o setup: this environment is already installed, so no
    .venv is built in the copy."""
    return run(["make", "-o", "setup", *target], repo, check=check)


def copy_repository(destination: Path) -> Path:
    """A fresh git repo holding what a clone of this one would: committed and new files."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "Pipeline Tests"],
        ["git", "config", "user.email", "tests@example.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "copy of the repository"],
    ):
        run(command, destination)
    return destination


def clone_copy(source: Path, destination: Path) -> Path:
    """A copy of a prepared repo (git history, DVC cache and outputs) for a test to change."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


@pytest.fixture(scope="session")
def fresh_repo(tmp_path_factory) -> Path:
    """A git copy of the repository in which nothing has been run."""
    return copy_repository(tmp_path_factory.mktemp("fresh") / "repo")


@pytest.fixture(scope="session")
def course_repo(tmp_path_factory, fresh_repo) -> Path:
    """The fresh copy with the course's params (COURSE_PARAMS) committed, nothing run: the
    fresh copy itself where they are already the committed ones."""
    if COMMITTED_ARE_THE_COURSE:
        return fresh_repo
    repo = clone_copy(fresh_repo, tmp_path_factory.mktemp("course") / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(COURSE_PARAMS, sort_keys=False))
    run(["git", "commit", "-q", "-am", "The course's params"], repo)
    return repo


def reproduced_once(
    name: str, source: Path, tmp_path_factory, worker_id, commit: bool
) -> tuple[Path, subprocess.CompletedProcess]:
    """`source` after the README's `make repro` (its set-up taken as done: this environment is
    first on PATH), and what that run printed. `commit`: commit what the run changed.

    The run happens once per `pytest` run: the first test process to need it makes it, under a
    lock, and every process (pytest-xdist worker) gets its own copy of the result.
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # this run's folder, above each worker's own
    made = shared / name
    printed = made / "make-repro.json"
    with FileLock(shared / f"{name}.lock"):
        if not printed.exists():
            shutil.rmtree(made / "repo", ignore_errors=True)  # from a run that was interrupted
            repo = clone_copy(source, made / "repo")
            result = make(["repro"], repo, check=False)
            # In a fork the course's results differ from the committed ones: commit them, so
            # that main holds them, as the course's reports and lock checks expect.
            changed = run(["git", "status", "--porcelain"], repo).stdout
            if commit and result.returncode == 0 and changed:
                run(["git", "add", "-A"], repo)
                run(["git", "commit", "-q", "-m", "The course's results"], repo)
            fields = ("args", "returncode", "stdout", "stderr")
            printed.write_text(json.dumps({field: getattr(result, field) for field in fields}))
    result = subprocess.CompletedProcess(**json.loads(printed.read_text()))
    if result.returncode != 0:  # in every test process that needs it
        raise AssertionError(
            f"make repro exited {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return clone_copy(made / "repo", tmp_path_factory.mktemp(name) / "repo"), result


@pytest.fixture(scope="session")
def reproduced(
    tmp_path_factory, course_repo, worker_id
) -> tuple[Path, subprocess.CompletedProcess]:
    """The course's run: `course_repo` after `make repro`, and what that run printed. Do not
    modify."""
    return reproduced_once("reproduced", course_repo, tmp_path_factory, worker_id, commit=True)


@pytest.fixture(scope="session")
def committed_reproduced(
    request, tmp_path_factory, fresh_repo, worker_id
) -> tuple[Path, subprocess.CompletedProcess]:
    """The run of the committed params, for the tests of what is committed (dvc.lock, metrics,
    the docs' commands). Do not modify. Where the committed params are the course's, it is the
    course's run, not a second one."""
    if COMMITTED_ARE_THE_COURSE:
        return request.getfixturevalue("reproduced")
    return reproduced_once("committed", fresh_repo, tmp_path_factory, worker_id, commit=False)


@pytest.fixture
def pipeline_repo(reproduced, tmp_path) -> Path:
    """A private copy of the course's reproduced repo, free to change."""
    return clone_copy(reproduced[0], tmp_path / "repo")


@pytest.fixture
def committed_repo(committed_reproduced, tmp_path) -> Path:
    """A private copy of the committed params' reproduced repo, free to change."""
    return clone_copy(committed_reproduced[0], tmp_path / "repo")


def git_clone(source: Path, destination: Path) -> Path:
    """What a teammate gets from `git clone`: the committed files, no DVC cache or outputs."""
    run(["git", "clone", "-q", str(source), str(destination)], source.parent)
    return destination


def workspace_files(repo: Path) -> dict[str, bytes]:
    """Every file a user sees in the repo, by path: outside .git/ and .dvc/, no bytecode."""
    skipped = {".git", ".dvc", "__pycache__"}
    return {
        str(path.relative_to(repo)): path.read_bytes()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and not skipped.intersection(path.relative_to(repo).parts)
    }


def remote_object(repo: Path, output: str) -> str:
    """Where DVC stores `output` (a path in dvc.lock) inside a remote: files/md5/ab/cdef..."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    md5 = next(
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == output
    )
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def assert_pull_refused_the_corrupted_model(
    pull: subprocess.CompletedProcess, clone: Path, source: Path
) -> None:
    """A pull whose model object was corrupted on the remote: it fails, naming the model, and
    only intact outputs land (export holds the model's bytes too, so it is refused as well)."""
    assert pull.returncode != 0
    assert "models/model.pt" in pull.stderr and "Traceback" not in pull.stderr
    assert not (clone / "models/model.pt").exists()
    assert not (clone / "models/export").exists()
    pulled = workspace_files(clone)
    assert "data/dataset.parquet" in pulled
    expected = workspace_files(source)
    assert pulled == {path: data for path, data in expected.items() if path in pulled}
    cached = [path.read_bytes() for path in (clone / ".dvc/cache").rglob("*") if path.is_file()]
    assert CORRUPTED_BYTES not in cached
