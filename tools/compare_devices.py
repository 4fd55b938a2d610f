"""Run the pipeline on two devices and compare their metrics (for whoever has a GPU).

    python -m tools.compare_devices                    # cpu against cuda
    python -m tools.compare_devices --devices cpu cuda:1

Each device gets its own clone of this repository's HEAD, so the working tree is untouched.
Exits 1 if any metric differs by more than the declared tolerance (`tolerances.yaml`).
"""

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tools.tolerance import load_tolerance, numbers_of

REPO = Path(__file__).resolve().parents[1]
METRICS = ("metrics/train.json", "metrics/evaluate.json")


def run_on(device: str, clone: Path) -> dict[str, float]:
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    params_file = clone / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["device"] = device
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    print(f"== dvc repro on {device}", flush=True)
    subprocess.run(["dvc", "repro", "--quiet"], cwd=clone, check=True)
    metrics: dict[str, float] = {}
    for name in METRICS:
        metrics.update(numbers_of(name, (clone / name).read_text()))
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs=2, default=["cpu", "cuda"], metavar="DEVICE")
    args = parser.parse_args()
    tolerance = load_tolerance()
    with tempfile.TemporaryDirectory() as workdir:
        try:
            first, second = (
                run_on(device, Path(workdir) / f"{number}-{device.replace(':', '-')}")
                for number, device in enumerate(args.devices)
            )
        except subprocess.CalledProcessError as error:
            print(f"error: {' '.join(map(str, error.cmd))} failed", file=sys.stderr)
            return 2
    print(f"\n| metric | {args.devices[0]} | {args.devices[1]} | difference |")
    print("|---|---|---|---|")
    failures = []
    for name in sorted(first):
        a, b = first[name], second.get(name, math.nan)
        difference = abs(a - b)
        print(f"| {name} | {a:.9g} | {b:.9g} | {difference:.3g} |")
        if not tolerance.agrees(a, b):
            failures.append(name)
    if failures:
        print(f"\nDiffer by more than the declared tolerance: {', '.join(failures)}")
        return 1
    print(f"\nAll metrics agree within the declared tolerance {tolerance}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
