"""What a table of many feature columns costs, stage by stage; writes its table in docs/scale.md.

    python benchmarks/wide_tables.py                          # what `make wide-tables` runs
    python benchmarks/wide_tables.py --features 100 --rows 500   # a quick look

For each width, a fresh `git clone` of HEAD gets a CSV of random standard-normal features and a
linear target with noise (regression) or its logistic labels (binary classification), and runs
the five stages one by one through `dvc repro --single-item` (10 epochs, full batch, 80/20 split,
the committed model otherwise). The table gives each stage's seconds and the peak memory of the
largest process, and whether evaluate's linear baseline was fitted or left out beyond
`baselines.MAX_BASELINE_UNKNOWNS`.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.pipeline_benchmark import STAGES, clone, commit, timed, write_section
from pytorch_workflow.baselines import MAX_BASELINE_UNKNOWNS

DOC = Path(__file__).resolve().parents[1] / "docs/scale.md"
SECTION = "<!-- wide tables: written by benchmarks/wide_tables.py -->"
TASKS = {"regression": "mse", "binary_classification": "bce"}


def wide_csv(path: Path, rows: int, features: int, task: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    signal = X @ (rng.normal(size=features) / np.sqrt(features))
    if task == "regression":
        target = signal + rng.normal(0, 0.5, rows)
    else:
        target = (3 * signal + rng.logistic(size=rows) > 0).astype(np.float32)
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    table["y"] = target
    table.to_csv(path, index=False, float_format="%.6g")


def measure(workdir: Path, rows: int, features: int, task: str) -> list[str]:
    repo = clone(
        workdir / f"{task}-{features}",
        task=task,
        data__source="csv",
        data__path="data/raw/wide.csv",
        data__target="y",
        data__standardize=True,
        train__loss=TASKS[task],
        train__epochs=10,
        train__batch_size=None,
    )
    wide_csv(repo / "data/raw/wide.csv", rows, features, task)
    measured = {
        stage: timed(["dvc", "repro", "--single-item", "--force", stage], repo) for stage in STAGES
    }
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    baseline = metrics.get("closed_form") or metrics.get("logistic_baseline")
    fitted = "left out" if all(value is None for value in baseline.values()) else "fitted"
    cells = [f"{seconds:.1f} s, {rss / 1e6:,.0f} MB" for seconds, rss in measured.values()]
    label = task.replace("binary_", "")
    return [f"| {features:,} | {label} | " + " | ".join(cells) + f" | {fitted} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    widest_with_a_baseline = MAX_BASELINE_UNKNOWNS - 1
    parser.add_argument(
        "--features", type=int, nargs="+", default=[100, widest_with_a_baseline, 10_000]
    )
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    table = [
        f"Written by `benchmarks/wide_tables.py` at commit {commit()}: {args.rows:,} rows, "
        f"{platform.machine()}, {os.cpu_count()} cores; seconds and peak memory of each stage "
        f"(MB = 10^6 bytes); the baseline is left out beyond {MAX_BASELINE_UNKNOWNS:,} "
        "unknowns.",
        "",
        "| features | task | " + " | ".join(STAGES) + " | linear baseline |",
        "|---|---|" + "---|" * len(STAGES) + "---|",
    ]
    with tempfile.TemporaryDirectory() as workdir:
        for features in args.features:
            for task in TASKS:
                row = measure(Path(workdir), args.rows, features, task)
                print(*row, flush=True)
                table += row
    print("\n".join(table))
    if not args.no_write:
        write_section(DOC, SECTION, table)


if __name__ == "__main__":
    main()
