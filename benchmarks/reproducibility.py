"""How far results move between machines and process counts; writes docs/reproducibility.md.

    python benchmarks/reproducibility.py      # what `make reproducibility-results` runs

Each configuration runs `dvc repro` in a fresh `git clone` of HEAD: on this machine as it is,
under the emulated machines of tests/test_reproducibility.py (torch's and numpy's SIMD kernels,
BLAS kernels, thread counts), and with `train.processes: 2`. Every recorded number (metrics and
plot tables, as `make lock-check` compares them) is compared with this machine's run: the
table says whether the outputs are the same bytes, and otherwise the largest relative
difference, against the declared tolerance (`tolerances.yaml`).
"""

import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.pipeline_benchmark import commit, environment  # noqa: E402
from tests.test_reproducibility import MACHINES, OWN_DATA  # noqa: E402
from tools.tolerance import largest_difference, load_tolerance, recorded_in  # noqa: E402

DOC = REPO / "docs/reproducibility.md"
MARKERS = ("<!-- reproducibility: written by benchmarks/reproducibility.py -->", "<!-- end -->")
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


def main() -> None:
    tolerance = load_tolerance()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for number, (name, settings) in enumerate(CONFIGURATIONS.items()):
            print(f"== {name}", flush=True)
            here = run_on(Path(workdir) / f"{number}-here", settings, {})
            others = {
                machine: run_on(Path(workdir) / f"{number}-{index}", settings, env)
                for index, (machine, env) in enumerate(MACHINES.items())
            }
            others[TWO_PROCESSES] = run_on(
                Path(workdir) / f"{number}-processes", [*settings, "train.processes=2"], {}
            )
            for machine, (numbers, hashes) in others.items():
                key, worst, outside = largest_difference(here[0], numbers, tolerance)
                figures = {p: h for p, h in hashes.items() if p != "models/export"}
                same = figures == {p: h for p, h in here[1].items() if p != "models/export"}
                if same:
                    found = "the same bytes"
                elif key is None:
                    found = "the same numbers (other file bytes)"
                else:
                    found = f"{worst:.2g} (`{key}`)"
                verdict = "outside" if outside else "within"
                rows.append(f"| {name} | {machine} | {found} | {verdict} |")
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    capability = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    table = [
        MARKERS[0],
        f"Measured by `benchmarks/reproducibility.py` at commit {commit()} (torch 2.13.0, CPU), "
        f"against the same configuration on the measuring machine as it is ({platform.machine()}, "
        f"{os.cpu_count()} cores, torch's {capability} kernels). The largest "
        "relative difference of any recorded number, and whether every number is within "
        f"the declared tolerance (relative {tolerance.relative:g}, absolute "
        f"{tolerance.absolute:g}):",
        "",
        "| configuration | run | largest relative difference | tolerance |",
        "|---|---|---|---|",
        *rows,
        MARKERS[1],
    ]
    text = DOC.read_text()
    pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC.name} has no {MARKERS[0]} ... {MARKERS[1]} section")
    DOC.write_text(pattern.sub(lambda _: "\n".join(table), text))
    print("\n".join(table))


if __name__ == "__main__":
    main()
