"""The same results on other machines: the pipeline under the settings of other CPUs.

Each "machine" below changes what picks the kernels and their rounding on a real machine:
torch's CPU capability (its SIMD kernels), numpy's SIMD dispatch, OpenBLAS's kernel family,
MKL's and oneDNN's instruction sets, thread counts, locale, time zone and the checkout path.
A fresh clone under each must write exactly the committed `dvc.lock` (the course's line). The
user's own data (regression with standardised features, a shuffled mini-batched classifier)
must give the same bytes when run again on one machine, and every recorded number within the
declared tolerance (`tolerances.yaml`) without SIMD. 128-bit ARM (Apple silicon, Graviton 2
and 4) was checked by hand under emulation (docs/reproducibility.md): no environment variable
makes an x86-64 CPU sum in 4 lanes.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import git_clone, run, tool_env
from tests.helpers import recorded_in
from tools.tolerance import largest_difference, load_tolerance

pytestmark = pytest.mark.slow

MACHINES = {
    "no SIMD, one thread": {
        "ATEN_CPU_CAPABILITY": "default",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 X86_V3 AVX512_ICL AVX512_SPR",
        "OPENBLAS_CORETYPE": "Prescott",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "LC_ALL": "C",
        "TZ": "Pacific/Kiritimati",
    },
    "AVX2, four threads": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "OPENBLAS_CORETYPE": "Haswell",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "OMP_NUM_THREADS": "4",
        "OPENBLAS_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
        "LC_ALL": "C.UTF-8",
        "TZ": "America/St_Johns",
    },
}
# Each recipe is set over the course's params (`course_repo`): a fork's other committed values
# would mix into it.
OWN_DATA = {
    "regression": [
        "data.source=csv",
        "data.path=data/raw/houses.csv",
        "data.target=price",
        "data.standardize=true",
        "train.loss=mse",
        "train.lr=0.1",
        "train.epochs=50",
    ],
    "classification": [
        "task=binary_classification",
        "data.source=csv",
        "data.path=data/raw/admissions.csv",
        "data.target=admitted",
        "data.standardize=true",
        "train.loss=bce",
        "train.lr=0.1",
        "train.epochs=50",
        "split.shuffle=true",
        "train.batch_size=64",
    ],
}


def outputs(repo: Path) -> dict[str, str]:
    """Each output's hash as dvc.lock records it."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}


def repro_on(
    source: Path, machine: dict[str, str], destination: Path, params: list[str], *targets: str
) -> Path:
    """`git clone`, the params set as `dvc exp run -S` would, then `dvc repro` on that machine."""
    clone = git_clone(source, destination)
    if params:
        # The same edit as `dvc exp run -S`, without an experiment commit in the way.
        path = clone / "params.yaml"
        values = yaml.safe_load(path.read_text())
        for assignment in params:
            key, value = assignment.split("=")
            *sections, name = key.split(".")
            target = values
            for section in sections:
                target = target[section]
            target[name] = yaml.safe_load(value)
        path.write_text(yaml.safe_dump(values, sort_keys=False))
    env = {**tool_env(), **machine}
    run(["dvc", "repro", *targets], clone, env=env)
    return clone


def linked_venv(venv: Path) -> None:
    """This test environment as `venv`, through links to its programs and packages: the
    Makefile's set-up finds everything installed, and marks only this copy as set up."""
    venv.mkdir()
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", venv)
    for name in ("bin", "lib"):
        (venv / name).symlink_to(Path(sys.prefix) / name, target_is_directory=True)


@pytest.mark.parametrize("machine", list(MACHINES))
def test_a_fresh_clone_on_another_machine_writes_the_committed_lock(fresh_repo, tmp_path, machine):
    # The README's `make repro` in a deeper path with a space: the checkout's place must not
    # matter, to the Makefile either. Its set-up finds this test environment as .venv.
    clone = git_clone(fresh_repo, tmp_path / "another place" / "repo")
    in_a_venv = sys.prefix != sys.base_prefix
    if in_a_venv:
        linked_venv(clone / ".venv")
    make = ["make", "repro"] if in_a_venv else ["make", "-o", "setup", "repro"]
    run(make, clone, env={**tool_env(), **MACHINES[machine]})

    assert run(["git", "status", "--porcelain"], clone).stdout == ""


@pytest.mark.parametrize("data", list(OWN_DATA))
def test_own_data_gives_the_same_bytes_when_run_again_on_one_machine(course_repo, tmp_path, data):
    repo = repro_on(course_repo, {}, tmp_path / "repo", OWN_DATA[data], "train")
    first = outputs(repo)
    run(["dvc", "repro", "--force", "--single-item", "train"], repo)

    assert outputs(repo) == first
    assert {"models/model.pt", "data/features.json"} <= set(first)


@pytest.mark.parametrize("data", list(OWN_DATA))
def test_own_data_on_another_machine_agrees_within_the_declared_tolerance(
    course_repo, tmp_path, data
):
    # This machine runs torch and numpy with SIMD kernels, on several threads; the other without
    # SIMD. There the pipeline runs to the end, where export requires its program to give
    # evaluate's predictions bit for bit, on that machine.
    here = repro_on(course_repo, {}, tmp_path / "here" / "repo", OWN_DATA[data], "evaluate")
    emulated = MACHINES["no SIMD, one thread"]
    there = repro_on(course_repo, emulated, tmp_path / "there" / "repo", OWN_DATA[data])

    _, _, outside = largest_difference(recorded_in(here), recorded_in(there), load_tolerance())
    assert outside == []
    assert outputs(there)["data/features.json"] == outputs(here)["data/features.json"]


@pytest.mark.parametrize(
    ("machine", "capability"), [("no SIMD, one thread", "DEFAULT"), ("AVX2, four threads", "AVX2")]
)
def test_each_machine_really_switches_kernels(tmp_path, machine, capability):
    # A misspelt setting would change nothing and prove nothing.
    probe = (
        "import torch\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as numpy_simd\n"
        "print(torch.backends.cpu.get_cpu_capability(), numpy_simd.get('X86_V3'))"
    )

    shown = run(
        ["python", "-c", probe], tmp_path, env={**tool_env(), **MACHINES[machine]}
    ).stdout.split()

    assert shown[0] == capability
    if machine == "no SIMD, one thread":
        assert shown[1] in ("False", "None")


# 100,000 rows of a noisy line: torch splits the sums over 80,000 train rows among threads.
SPLIT_BY_THREADS = ["data.step=0.00001", "data.noise_std=0.1", "train.loss=mse", "train.epochs=5"]


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset to take cores away")
def test_the_thread_count_in_params_not_the_machines_cores_sets_the_bits(course_repo, tmp_path):
    two_threads = repro_on(course_repo, {}, tmp_path / "two" / "repo", SPLIT_BY_THREADS, "train")
    first = outputs(two_threads)
    # The same params on a machine of one core: torch runs the two threads on it.
    core = str(min(os.sched_getaffinity(0)))
    one_core = ["taskset", "--cpu-list", core, "dvc", "repro", "--force", "--single-item", "train"]
    run(one_core, two_threads)
    assert outputs(two_threads) == first

    three_threads = repro_on(
        course_repo, {}, tmp_path / "three" / "repo", [*SPLIT_BY_THREADS, "threads=3"], "train"
    )
    _, difference, outside = largest_difference(
        recorded_in(two_threads), recorded_in(three_threads), load_tolerance()
    )
    assert difference > 0 and outside == []  # other last bits, within the tolerance
