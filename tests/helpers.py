"""Small tables and params for the library's tests, and what the tests read from pages and
checkouts."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pytorch_workflow.data_setup import fitted_features, line_chunks, read_split, split_dataset
from pytorch_workflow.params import DataParams, SplitParams, TrainParams
from pytorch_workflow.tables import ParquetTable, write_table
from tools.tolerance import RESULTS, number_files, numbers_of

# The course's chapter 01 as a whole params.yaml: the line y = 0.7x + 0.3 (50 rows), the first 80%
# for training, LinearRegressionModel, L1 loss, SGD at lr 0.01 for 100 epochs, seed 42, on the CPU.
# Tests of the course's numbers use these rather than the committed params.yaml, which a fork may
# point at its own data; conftest's `reproduced` runs the pipeline with them.
COURSE_PARAMS = {
    "seed": 42,
    "device": "cpu",
    "threads": 2,
    "task": "regression",
    "data": {
        "source": "line",
        # A line ignores the CSV, but the prepare stage lists it as a dependency: the example
        # file that the repository ships.
        "path": "data/raw/houses.csv",
        "test_path": None,
        "target": "y",
        "features": None,
        "standardize": False,
        "chunk_rows": 1_000_000,
        "weight": 0.7,
        "bias": 0.3,
        "start": 0.0,
        "end": 1.0,
        "step": 0.02,
        "noise_std": 0.0,
    },
    "split": {"train_fraction": 0.8, "shuffle": False, "stratify": False},
    "model": {
        "name": "linear_regression",
        "options": {},
        "hidden_units": [10, 10],
        "activation": "relu",
    },
    "train": {
        "epochs": 100,
        "batch_size": None,
        "lr": 0.01,
        "loss": "l1",
        "loss_options": {},
        "optimizer": "sgd",
        "optimizer_options": {},
        "scheduler": None,
        "scheduler_options": {},
        "l2": 0.0,
        "processes": 1,
        "log_every": 10,
    },
}
COURSE_DATA = DataParams(**COURSE_PARAMS["data"])
COURSE_SPLIT = SplitParams(**COURSE_PARAMS["split"])
COURSE_TRAIN = TrainParams(**COURSE_PARAMS["train"])


def data_params(**changes) -> DataParams:
    return DataParams(**{**COURSE_DATA.__dict__, **changes})


def train_params(**changes) -> TrainParams:
    return TrainParams(**{**COURSE_TRAIN.__dict__, **changes})


def split_params(**changes) -> SplitParams:
    return SplitParams(**{**COURSE_SPLIT.__dict__, **changes})


def table_file(
    path: Path, columns: dict[str, np.ndarray], chunk_rows: int = 1_000_000
) -> ParquetTable:
    """A float32 Parquet table written the pipeline's way."""
    table = pa.table(
        {name: np.asarray(values, dtype=np.float32) for name, values in columns.items()}
    )
    write_table(path, [table], chunk_rows)
    return ParquetTable(path)


def split_side(repo: Path, side: str) -> pd.DataFrame:
    """The train or test rows of a repo's dataset, as data/split.parquet records them."""
    train = pd.read_parquet(repo / "data/split.parquet")["train"].to_numpy()
    rows = train if side == "train" else ~train
    return pd.read_parquet(repo / "data/dataset.parquet")[rows].reset_index(drop=True)


def course_split(
    folder: Path, data: DataParams = COURSE_DATA, split: SplitParams = COURSE_SPLIT, seed=42
):
    """The dataset made and split as the prepare and split stages do: (train, test, features)."""
    write_table(folder / "dataset.parquet", line_chunks(data, seed), data.chunk_rows)
    dataset = ParquetTable(folder / "dataset.parquet")
    _, stats = split_dataset(dataset, split, "regression", seed, folder / "split.parquet")
    features = fitted_features(dataset.columns, stats, data.standardize)
    return *read_split(folder / "dataset.parquet", folder / "split.parquet"), features


def documented_commands(page: Path) -> list[str]:
    """The commands of a Markdown page's ```bash blocks as a user types them: continuation
    lines joined, comments dropped."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                found.append(re.sub(r"\s+", " ", command))
    return found


def recorded_in(repo: Path) -> dict[str, float]:
    """Every recorded number of a checkout's workspace, in RESULTS' order."""
    names = [
        path.relative_to(repo).as_posix()
        for folder in RESULTS
        for path in (repo / folder).rglob("*")
        if path.is_file()
    ]
    numbers: dict[str, float] = {}
    for name in number_files(names):
        numbers.update(numbers_of(name, (repo / name).read_text(encoding="utf-8")))
    return numbers
