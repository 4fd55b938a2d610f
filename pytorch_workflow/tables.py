"""Tables as float32 Parquet files, written and read one row group (a chunk) at a time, and
the conversions between Arrow's columns and numpy's arrays."""

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pytorch_workflow.errors import UserError, first_line
from pytorch_workflow.files import atomic_path

# Arrow's default allocator keeps memory it has freed for itself; through malloc, the torch
# stages reuse it.
pa.set_memory_pool(pa.system_memory_pool())

# The footer key of the dataset that counts its last rows that are a given test split.
GIVEN_TEST_ROWS = "pytorch_workflow.given_test_rows"

_FLOAT_DTYPES = {pa.float32(): np.dtype(np.float32), pa.float64(): np.dtype(np.float64)}


def numpy_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as a numpy array (read-only where it shares Arrow's memory); nulls as NaN.

    Workaround: pyarrow's own conversions (`to_numpy`, `pa.array`, `pa.table` of numpy arrays)
    go through its pandas layer, which imports pandas wherever it is installed: 0.3 to 0.9 s of
    start-up in each stage (upstream: apache/arrow#26926, to_numpy's pandas conversion path). A
    floating-point or boolean column without nulls is read from its data buffer here instead,
    and `arrow_table` builds tables from buffers. tests/test_data_setup.py fails once pyarrow no
    longer imports pandas for these conversions: then both can go.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if column.type == pa.bool_() and not any(chunk.null_count for chunk in chunks):
        # Arrow packs booleans eight to a byte, the first in the lowest bit.
        bits = [
            np.unpackbits(
                np.frombuffer(chunk.buffers()[1], np.uint8),
                count=chunk.offset + len(chunk),
                bitorder="little",
            )[chunk.offset :].view(bool)
            for chunk in chunks
        ]
        return np.concatenate(bits) if bits else np.empty(0, bool)
    dtype = _FLOAT_DTYPES.get(column.type)
    if dtype is None or any(chunk.null_count for chunk in chunks):
        return column.to_numpy(zero_copy_only=False)
    parts = [
        np.frombuffer(
            chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize
        )
        for chunk in chunks
        if len(chunk)
    ]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def arrow_table(columns: dict[str, np.ndarray]) -> pa.Table:
    """A table of 1-d numeric or boolean numpy arrays, built from their buffers (see
    `numpy_column`)."""
    arrays = {}
    for name, values in columns.items():
        if values.ndim == 1 and values.dtype == np.bool_:
            packed = np.packbits(values, bitorder="little")
            arrays[name] = pa.Array.from_buffers(
                pa.bool_(), len(values), [None, pa.py_buffer(packed)]
            )
            continue
        if values.ndim != 1 or values.dtype.kind not in "fiu" or not values.dtype.isnative:
            arrays[name] = pa.array(values)  # not a plain vector of numbers: pyarrow's own way
            continue
        values = np.ascontiguousarray(values)
        arrow_type = pa.from_numpy_dtype(values.dtype)
        arrays[name] = pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])
    return pa.table(arrays)


class TableWriter:
    """Appends chunks to a Parquet file in row groups of `chunk_rows` (None: each chunk one row
    group), atomically.

    Nothing appears at `path` until the block ends without an error.
    """

    def __init__(self, path: str | Path, chunk_rows: int | None) -> None:
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self.appended = 0  # rows given to `append`, written or not yet
        self.footer: dict[str, str] = {}  # key-value metadata for the file's footer
        self._pending: pa.Table | None = None  # fewer than chunk_rows rows, not yet written
        self._writer: pq.ParquetWriter | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "TableWriter":
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        # Closed before the file is published: a footer that cannot be written (a full disk)
        # fails the write like any other error.
        self._stack.callback(self._close)
        return self

    def _close(self) -> None:
        if self._writer is not None:
            if self.footer:
                self._writer.add_key_value_metadata(self.footer)
            self._writer.close()

    def append(self, table: pa.Table) -> None:
        self.appended += table.num_rows
        if self.chunk_rows is None:
            if table.num_rows:
                self._write(table)
            return
        if self._pending is not None:
            table = pa.concat_tables([self._pending, table])
        while table.num_rows >= self.chunk_rows:
            self._write(table.slice(0, self.chunk_rows))
            table = table.slice(self.chunk_rows)
        self._pending = table

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            # No dictionary encoding and no compression: measured floats neither repeat nor
            # compress, and the train stage reads every row group again each epoch. No min/max
            # statistics: nothing here filters row groups by them.
            self._writer = pq.ParquetWriter(
                self._tmp,
                table.schema,
                use_dictionary=False,
                compression="none",
                write_statistics=False,
            )
        self._writer.write_table(table, row_group_size=table.num_rows)

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self._stack.__exit__(kind, error, traceback)
            return
        with self._stack:
            if self._pending is not None and self._pending.num_rows:
                self._write(self._pending)
            if self.appended == 0:
                raise UserError(f"{self.path}: nothing to write (no rows)")


def write_table(path: str | Path, chunks: Iterable[pa.Table], chunk_rows: int) -> int:
    """Write float32 chunks to a Parquet file in row groups of `chunk_rows`; returns the rows."""
    with TableWriter(path, chunk_rows) as writer:
        for chunk in chunks:
            writer.append(chunk)
    return writer.appended


class Chunks:
    """A table read a chunk at a time: `offsets` are where its chunks start, and its end."""

    offsets: list[int]

    @property
    def num_chunks(self) -> int:
        return len(self.offsets) - 1

    @property
    def chunk_lengths(self) -> list[int]:
        return [end - start for start, end in itertools.pairwise(self.offsets)]

    def chunk(self, index: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return map(self.chunk, range(self.num_chunks))


class ParquetTable(Chunks):
    """A float32 table in a Parquet file, read one row group (a chunk) at a time."""

    def __init__(self, path: str | Path, columns: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self._file = open_parquet(self.path)
        schema = self._file.schema_arrow
        # Each of `schema.names` and `schema.field` goes through every column: looked up once
        # here, a table of 10,000 columns is checked in milliseconds instead of seconds.
        types = dict(zip(schema.names, schema.types, strict=True))
        self.columns = list(columns) if columns is not None else list(types)
        missing = [name for name in self.columns if name not in types]
        if missing:
            raise UserError(f"{self.path}: missing column(s) {', '.join(missing)}")
        for name in self.columns:
            kind = types[name]
            if not pa.types.is_floating(kind):
                raise UserError(f"{self.path}: column {name} is not numeric ({kind})")
        self.rows = self._file.metadata.num_rows
        footer = self._file.metadata.metadata or {}
        # The dataset's last rows that are a given test split (data.test_path), if any.
        self.given_test_rows = int(footer.get(GIVEN_TEST_ROWS.encode(), b"0"))
        if self.rows == 0:
            raise UserError(f"{self.path}: has no rows")
        self.offsets = [0]
        for group in range(self._file.num_row_groups):
            self.offsets.append(self.offsets[-1] + self._file.metadata.row_group(group).num_rows)

    def chunk(self, index: int) -> dict[str, np.ndarray]:
        """Row group `index` as float32 arrays, checked for NaN and infinite values."""
        table = read_row_group(self._file, self.path, index, self.columns)
        arrays = {}
        for name in self.columns:
            values = numpy_column(table[name]).astype(np.float32, copy=False)
            finite = np.isfinite(values)
            if not finite.all():
                row = self.offsets[index] + int(np.flatnonzero(~finite)[0])
                raise UserError(
                    f"{self.path}: column {name} has a NaN or infinite value at row {row}"
                )
            arrays[name] = values
        return arrays


def open_parquet(path: Path) -> pq.ParquetFile:
    """A Parquet file of the pipeline's, opened; missing or damaged, one line that says so."""
    if not path.is_file():
        raise UserError(f"{path}: file not found; run `dvc repro` to make it")
    try:
        file = pq.ParquetFile(path)
        file.schema_arrow  # noqa: B018 (a damaged footer fails here)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise _unreadable(path, error) from None
    return file


def read_row_group(file: pq.ParquetFile, path: Path, index: int, columns: list[str]) -> pa.Table:
    try:
        return file.read_row_group(index, columns=columns)
    except Exception as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> UserError:
    return UserError(f"{path}: not a readable Parquet file ({first_line(error, 200)})")
