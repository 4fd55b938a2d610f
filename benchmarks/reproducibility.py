"""How far results move between machines, process counts and devices; writes
docs/reproducibility.md.

    python benchmarks/reproducibility.py                 # what `make reproducibility-results` runs
    python benchmarks/reproducibility.py --device cuda   # on a machine with a GPU

Each configuration runs `dvc repro` in a fresh `git clone` of HEAD: on this machine as it is,
under the emulated machines of tests/test_reproducibility.py (torch's and numpy's SIMD kernels,
BLAS kernels, thread counts), and with `train.processes: 2`; or, with `--device`, on that device
twice. Every recorded number (metrics and plot tables, as `make lock-check` compares them) is
compared with this machine's CPU run (the device's second run with its first): the table says
whether the outputs are the same bytes, and otherwise the largest relative difference, against
the declared tolerance (`tolerances.yaml`). Exits 1 if any number is outside it.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.pipeline_benchmark import commit, environment, write_section  # noqa: E402
from tests.helpers import recorded_in  # noqa: E402
from tests.test_reproducibility import MACHINES, OWN_DATA  # noqa: E402
from tools.tolerance import largest_difference, load_tolerance  # noqa: E402

DOC = REPO / "docs/reproducibility.md"
CPU_SECTION = "<!-- reproducibility: written by benchmarks/reproducibility.py -->"
DEVICE_SECTION = (
    "<!-- reproducibility on a GPU: written by benchmarks/reproducibility.py --device -->"
)
CONFIGURATIONS = {
    "the course (committed params)": [],
    "houses.csv: 4 features, standardised, MSE, SGD": OWN_DATA["regression"],
    "admissions.csv: BCE, shuffled mini-batches": OWN_DATA["classification"],
    "houses.csv with `linear_regression_v2` (`nn.Linear`)": [
        *OWN_DATA["regression"],
        "model.name=linear_regression_v2",
    ],
    "the course with AdamW and a cosine schedule": [
        "train.optimizer=adamw",
        "train.lr=0.01",
        "train.optimizer_options={weight_decay: 0.01}",
        "train.scheduler=cosineannealinglr",
        "train.scheduler_options={T_max: 100}",
    ],
    "a noisy line of 10,000 rows in 10 chunks, mini-batches of 500": [
        "data.step=0.0001",
        "data.noise_std=0.05",
        "data.chunk_rows=1000",
        "train.batch_size=500",
        "train.epochs=20",
    ],
}
# Beside the emulated machines: the same machine with two training processes.
TWO_PROCESSES = "2 processes (`DistributedDataParallel`)"


def run_on(workdir: Path, settings: list[str], machine: dict[str, str]) -> tuple[dict, dict]:
    """(every recorded number, every output's md5) of `dvc repro` in a fresh clone."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(workdir)], check=True)
    path = workdir / "params.yaml"
    values = yaml.safe_load(path.read_text())
    for assignment in settings:
        key, value = assignment.split("=", 1)
        *sections, name = key.split(".")
        target = values
        for section in sections:
            target = target[section]
        target[name] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    subprocess.run(
        ["dvc", "repro", "--quiet"], cwd=workdir, env={**environment(), **machine}, check=True
    )
    numbers = recorded_in(workdir)
    lock = yaml.safe_load((workdir / "dvc.lock").read_text())
    hashes = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}
    return numbers, hashes


def compare(name: str, run: str, reference: tuple, candidate: tuple, tolerance) -> tuple[str, bool]:
    """A table row for one run against its reference, and whether it is within the tolerance."""
    key, worst, outside = largest_difference(reference[0], candidate[0], tolerance)
    figures = [
        {p: h for p, h in hashes.items() if p != "models/export"}
        for _, hashes in (reference, candidate)
    ]
    if figures[0] == figures[1]:
        found = "the same bytes"
    elif key is None:
        found = "the same numbers (other file bytes)"
    else:
        found = f"{worst:.2g} (`{key}`)"
    return f"| {name} | {run} | {found} | {'outside' if outside else 'within'} |", not outside


def on_emulated_machines(workdir: Path, number: int, settings: list[str], here: tuple):
    """(run, reference, candidate) for this machine's emulated others and two processes."""
    for index, (machine, env) in enumerate(MACHINES.items()):
        yield machine, here, run_on(workdir / f"{number}-{index}", settings, env)
    processes = run_on(workdir / f"{number}-processes", [*settings, "train.processes=2"], {})
    yield TWO_PROCESSES, here, processes


def on_device(workdir: Path, number: int, settings: list[str], here: tuple, device: str):
    """(run, reference, candidate) for `device` against this CPU, and for its second run."""
    first = run_on(workdir / f"{number}-{device}", [*settings, f"device={device}"], {})
    yield device, here, first
    again = run_on(workdir / f"{number}-{device}-again", [*settings, f"device={device}"], {})
    yield f"{device}, run again (against its first run)", first, again


def measured_on(device: str | None) -> str:
    """torch's release, and the CPU (and GPU) the figures were measured on."""
    gpu = f"torch.cuda.get_device_name({device!r})" if device else "''"
    probe = (
        f"import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability(), {gpu})"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    version, capability, gpu_name = f"{shown.stdout.strip()} ".split(" ", 2)
    where = f"{platform.machine()}, {os.cpu_count()} cores, torch's {capability} kernels"
    if device:
        where = f"{gpu_name.strip()} as `{device}`; its CPU: {where}"
    return f"torch {version}; {where}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="a GPU to compare with this machine's CPU: cuda, cuda:1")
    device = parser.parse_args().device
    tolerance = load_tolerance()
    rows, agree = [], True
    with tempfile.TemporaryDirectory() as workdir:
        for number, (name, settings) in enumerate(CONFIGURATIONS.items()):
            print(f"== {name}", flush=True)
            try:
                here = run_on(Path(workdir) / f"{number}-here", settings, {})
                if device is None:
                    runs = on_emulated_machines(Path(workdir), number, settings, here)
                else:
                    runs = on_device(Path(workdir), number, settings, here, device)
                for run, reference, candidate in runs:
                    row, within = compare(name, run, reference, candidate, tolerance)
                    rows.append(row)
                    print(row, flush=True)  # a run stopped at a time limit keeps what it measured
                    agree = agree and within
            except subprocess.CalledProcessError as failed:  # the next configuration still runs
                rows.append(
                    f"| {name} | {device or 'this CPU'} | `dvc repro` failed: exit "
                    f"{failed.returncode} (its output is above) | outside |"
                )
                agree = False
    table = [
        f"Measured by `benchmarks/reproducibility.py` at commit {commit()} "
        f"({measured_on(device)}), against the same configuration on the measuring machine's "
        "CPU. The largest relative difference of any recorded number, and whether every number "
        f"is within the declared tolerance (relative {tolerance.relative:g}, absolute "
        f"{tolerance.absolute:g}):",
        "",
        "| configuration | run | largest relative difference | tolerance |",
        "|---|---|---|---|",
        *rows,
    ]
    write_section(DOC, CPU_SECTION if device is None else DEVICE_SECTION, table)
    print("\n".join(table))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
