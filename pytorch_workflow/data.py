"""The data: the course's straight line or the user's CSV, split into train and test.

Tables are float32 Parquet, features first and the target last. No torch here: the data
stages stay light, and Parquet keeps float32 values exact.
"""

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pytorch_workflow.errors import UserError
from pytorch_workflow.files import atomic_write_bytes, atomic_write_json
from pytorch_workflow.params import DataParams, SplitParams, arange_length

# Arrow's default allocator keeps memory it has freed for itself. Through malloc instead, torch
# reuses it: at 10M rows the train stage peaks about 100 MB lower.
pa.set_memory_pool(pa.system_memory_pool())

LINE_FEATURE = "x"
LINE_TARGET = "y"

# torch.arange fills float32 tensors eight values at a time: the first of each block is
# start + i*step rounded to float32, the rest add m*step to that rounded value in float64.
# Reproducing that is what makes the data, and so every loss, match the course to the digit.
_ARANGE_BLOCK = 8


def course_arange(start: float, end: float, step: float) -> np.ndarray:
    """The values of `torch.arange(start, end, step)` (float32), computed without torch."""
    count = arange_length(start, end, step)
    index = np.arange(count, dtype=np.int64)
    offset_in_block = index % _ARANGE_BLOCK
    block_start = index - offset_in_block
    block_base = (start + step * block_start.astype(np.float64)).astype(np.float32)
    values = (block_base.astype(np.float64) + step * offset_in_block).astype(np.float32)
    # The last partial block is filled one value at a time: start + i*step.
    tail = (count // _ARANGE_BLOCK) * _ARANGE_BLOCK
    values[tail:] = (start + step * index[tail:].astype(np.float64)).astype(np.float32)
    return values


def make_line_data(params: DataParams, seed: int) -> pd.DataFrame:
    """X from start to end by step; y = weight * X + bias (+ seeded Gaussian noise), float32."""
    x = course_arange(params.start, params.end, params.step)
    # float32 arithmetic, as torch does `weight * X + bias` on a float32 tensor.
    y = np.float32(params.weight) * x + np.float32(params.bias)
    if params.noise_std > 0:
        noise = np.random.default_rng(seed).normal(0.0, params.noise_std, size=len(x))
        y = (y.astype(np.float64) + noise).astype(np.float32)
    return pd.DataFrame({LINE_FEATURE: x, LINE_TARGET: y})


def read_csv_dataset(params: DataParams, task: str) -> pd.DataFrame:
    """The user's CSV as a float32 table: the chosen features, then the target."""
    path = Path(params.path)
    if not path.is_file():
        raise UserError(f"{path}: data.path not found; `dvc add` your CSV and set data.path")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise UserError(f"{path}: not a readable CSV ({reason[:160]})") from None
    if table.empty:
        raise UserError(f"{path}: has no rows")
    if params.target not in table.columns:
        raise UserError(
            f"{path}: data.target column {params.target!r} not found; "
            f"columns: {', '.join(map(str, table.columns))}"
        )
    if params.features is None:
        features = [
            column
            for column in table.columns
            if column != params.target and pd.api.types.is_numeric_dtype(table[column])
        ]
        if not features:
            raise UserError(f"{path}: no numeric column besides the target {params.target!r}")
    else:
        features = list(params.features)
        missing = [name for name in features if name not in table.columns]
        if missing:
            raise UserError(f"{path}: data.features column(s) not found: {', '.join(missing)}")
    columns = [*features, params.target]
    for column in columns:
        _check_numeric(path, column, table[column])
    dataset = table[columns].astype(np.float32)
    if task == "binary_classification":
        labels = set(np.unique(dataset[params.target]).tolist())
        if not labels <= {0.0, 1.0}:
            shown = ", ".join(f"{value:g}" for value in sorted(labels)[:5])
            raise UserError(
                f"{path}: task binary_classification needs a 0/1 target; "
                f"column {params.target!r} has {shown}"
            )
    return dataset


def make_dataset(params: DataParams, task: str, seed: int) -> pd.DataFrame:
    if params.source == "csv":
        return read_csv_dataset(params, task)
    return make_line_data(params, seed)


def split_data(
    dataset: pd.DataFrame, params: SplitParams, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First int(train_fraction * n) rows train, the rest test; a seeded shuffle first if asked."""
    rows = len(dataset)
    train_size = int(params.train_fraction * rows)
    if train_size < 1 or train_size >= rows:
        raise UserError(
            f"split.train_fraction={params.train_fraction} leaves an empty split of {rows} rows "
            f"({train_size} train, {rows - train_size} test)"
        )
    if params.shuffle:
        order = np.random.default_rng(seed).permutation(rows)
        dataset = dataset.iloc[order]
    dataset = dataset.reset_index(drop=True)
    return (
        dataset.iloc[:train_size].reset_index(drop=True),
        dataset.iloc[train_size:].reset_index(drop=True),
    )


@dataclass(frozen=True)
class Features:
    """Which columns are features and target, and the standardisation fitted on train."""

    names: tuple[str, ...]
    target: str
    mean: np.ndarray | None = None  # float32, shape (k,); None when not standardising
    std: np.ndarray | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.names, self.target)

    def scale(self, X: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            return X
        return (X - self.mean) / self.std


def fit_features(train: pd.DataFrame, standardize: bool) -> Features:
    """The train split's columns, and with `standardize` their mean and std (train only)."""
    names, target = tuple(train.columns[:-1]), train.columns[-1]
    if not standardize:
        return Features(names, target)
    X = train[list(names)].to_numpy(dtype=np.float64)
    std = X.std(axis=0)
    # A constant feature carries no information; dividing by 1 keeps it finite.
    std[std == 0] = 1.0
    return Features(names, target, X.mean(axis=0).astype(np.float32), std.astype(np.float32))


def write_features(path: str | Path, features: Features) -> None:
    atomic_write_json(
        path,
        {
            "features": list(features.names),
            "target": features.target,
            "mean": None if features.mean is None else features.mean.tolist(),
            "std": None if features.std is None else features.std.tolist(),
        },
    )


def read_features(path: str | Path) -> Features:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        mean, std = payload["mean"], payload["std"]
        return Features(
            tuple(payload["features"]),
            payload["target"],
            None if mean is None else np.asarray(mean, dtype=np.float32),
            None if std is None else np.asarray(std, dtype=np.float32),
        )
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run `dvc repro` to make it") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: not a readable features file ({error})") from None


def features_and_target(table: pd.DataFrame, features: Features) -> tuple[np.ndarray, np.ndarray]:
    """X as a standardised float32 (n, k) array and y as float32 (n,)."""
    X = table[list(features.names)].to_numpy(dtype=np.float32, copy=True)
    y = table[features.target].to_numpy(dtype=np.float32, copy=True)
    return features.scale(X), y


def write_table(path: str | Path, table: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    # Dictionary encoding only helps repeated values; on measured floats it triples write time.
    table.to_parquet(buffer, engine="pyarrow", index=False, use_dictionary=False)
    atomic_write_bytes(path, buffer.getvalue())


def write_csv(path: str | Path, table: pd.DataFrame) -> None:
    """A small table as CSV, for `dvc plots`; floats keep every digit."""
    atomic_write_bytes(path, table.to_csv(index=False).encode("utf-8"))


def read_table(path: str | Path, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read a Parquet table and check it holds finite numbers (in `columns`, if given)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found; run `dvc repro` to make it")
    try:
        arrow_table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: not a readable Parquet file ({reason})") from None
    # Column by column, freeing Arrow's copy as it goes: at 10M rows this halves peak memory.
    table = arrow_table.to_pandas(split_blocks=True, self_destruct=True)
    del arrow_table
    if columns is not None:
        missing = [column for column in columns if column not in table.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        table = table[list(columns)]
    if table.empty:
        raise UserError(f"{path}: has no rows")
    for column in table.columns:
        _check_numeric(path, column, table[column])
    return table.astype(np.float32)


def _check_numeric(path: Path, column: str, values: pd.Series) -> None:
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise UserError(f"{path}: column {column} is not numeric ({values.dtype})")
    as_numbers = values.to_numpy(na_value=np.nan) if values.hasnans else values.to_numpy()
    finite = np.isfinite(as_numbers)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise UserError(f"{path}: column {column} has a NaN or infinite value at row {row}")
