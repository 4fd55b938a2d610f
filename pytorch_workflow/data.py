"""The course's data: a straight line, split into train and test, stored as float32 Parquet.

No torch here: the data stages stay light, and Parquet keeps float32 values exact.
"""

import io
from pathlib import Path

import numpy as np
import pandas as pd

from pytorch_workflow.errors import UserError
from pytorch_workflow.files import atomic_write_bytes
from pytorch_workflow.params import DataParams, SplitParams, arange_length

FEATURE = "x"
TARGET = "y"
COLUMNS = (FEATURE, TARGET)

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
    return pd.DataFrame({FEATURE: x, TARGET: y})


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


def write_table(path: str | Path, table: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    table.to_parquet(buffer, engine="pyarrow", index=False)
    atomic_write_bytes(path, buffer.getvalue())


def write_csv(path: str | Path, table: pd.DataFrame) -> None:
    """A small table as CSV, for `dvc plots`; floats keep every digit."""
    atomic_write_bytes(path, table.to_csv(index=False).encode("utf-8"))


def read_table(path: str | Path, columns: tuple[str, ...] = COLUMNS) -> pd.DataFrame:
    """Read a Parquet table and check it holds finite float32 values in `columns`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found; run `dvc repro` to make it")
    try:
        table = pd.read_parquet(path, engine="pyarrow")
    except Exception as error:  # pyarrow raises several types for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: not a readable Parquet file ({reason})") from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    table = table[list(columns)]
    if table.empty:
        raise UserError(f"{path}: has no rows")
    for column in columns:
        if not pd.api.types.is_numeric_dtype(table[column]) or pd.api.types.is_bool_dtype(
            table[column]
        ):
            raise UserError(f"{path}: column {column} is not numeric ({table[column].dtype})")
        values = table[column].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise UserError(f"{path}: column {column} has a NaN or infinite value at row {bad}")
    return table.astype(np.float32)
