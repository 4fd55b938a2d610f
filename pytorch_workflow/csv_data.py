"""The user's CSV as float32 tables: the columns that params select, every value checked,
read a block at a time."""

import csv
import io
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from pytorch_workflow.errors import UserError, first_line
from pytorch_workflow.params import (
    CLASSIFICATION,
    MULTICLASS,
    REGRESSION,
    DataParams,
    closest_name,
)
from pytorch_workflow.tables import GIVEN_TEST_ROWS, TableWriter, arrow_table, numpy_column

# CSV files are read in blocks of 4 MiB.
CSV_READ_OPTIONS = pa_csv.ReadOptions(block_size=1 << 22)
# A column whose float32 values come in steps coarser than this share of its spread gets a note.
COARSEST_STEP = 1e-4
# Each column that float32 rounds coarsely for its spread: a value, as rounded, and the step.
Rounded = dict[str, tuple[float, float, float]]


# pyarrow decompresses a CSV whose extension, in lower case, names the compression; the first
# bytes of each such file.
COMPRESSED = {
    ".gz": re.compile(re.escape(b"\x1f\x8b")),
    ".bz2": re.compile(rb"BZh[1-9]1AY&SY"),
    ".zst": re.compile(re.escape(b"\x28\xb5\x2f\xfd")),
}
# The first bytes of archives that pyarrow does not open, and what to do with each.
ARCHIVES = {b"PK\x03\x04": "a zip archive: unzip it", b"\xfd7zXZ\x00": "xz-compressed: unxz it"}
# What other tools separate fields with, where a CSV has commas.
OTHER_SEPARATORS = (";", "\t", "|")


class CsvDataset(NamedTuple):
    rows: int
    test_rows: int  # the last rows, the given test split's (0 without one)
    rounded: Rounded


def write_csv_dataset(
    params: DataParams, task: str, path: Path, chunk_rows: int, raw_folder: Path
) -> CsvDataset:
    """The user's CSV (and the given test split after it) as the dataset."""
    if params.test_path is not None:
        # Not resolved: a file that `dvc add` links into its cache is still in the folder.
        given, folder = (os.path.abspath(name) for name in (params.test_path, raw_folder))
        if os.path.commonpath([given, folder]) != folder:
            raise UserError(
                f"{params.test_path}: data.test_path must be in {raw_folder}/, the folder that "
                "the prepare stage depends on (dvc.yaml), so that DVC sees the file change"
            )
        if given == os.path.abspath(params.path):
            raise UserError(
                f"{params.test_path}: data.test_path is data.path; give the test split's own file"
            )
    rounded: Rounded = {}
    with TableWriter(path, chunk_rows) as writer:
        columns = None
        for chunk in csv_chunks(params, task, params.path, rounded=rounded):
            columns = chunk.column_names
            writer.append(chunk)
        if params.test_path is None:
            return CsvDataset(writer.appended, 0, rounded)
        train_rows = writer.appended
        given_test = csv_chunks(params, task, params.test_path, columns, "data.test_path", rounded)
        for chunk in given_test:
            writer.append(chunk)
        test_rows = writer.appended - train_rows
        writer.footer[GIVEN_TEST_ROWS] = str(test_rows)
    return CsvDataset(writer.appended, test_rows, rounded)


def csv_chunks(
    params: DataParams,
    task: str,
    path: str,
    columns: list[str] | None = None,
    key: str = "data.path",
    rounded: Rounded | None = None,
) -> Iterator[pa.Table]:
    """A CSV as float32 tables of about a block each: the features, then the target (the
    `columns` given, or those that `params` select). `key` is the param that names the file;
    `rounded` gets each column that float32 rounds coarsely for its spread (a value, as rounded,
    and the step)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: {key} not found; `dvc add` your CSV and set {key}") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read {key} ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: {key} is a folder; point it at the CSV file inside")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: {key} is not a regular file (a pipe or device?)")
    refuse_what_is_not_csv_text(path)
    columns = _csv_columns(path, params, columns)
    first_row = 1  # data rows counted from 1, the first line after the header
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=CSV_READ_OPTIONS,
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns, column_types=dict.fromkeys(columns, pa.float64())
            ),
        )
        for batch in reader:
            table = pa.Table.from_batches([batch])  # its columns in the order of `columns`
            yield _checked_float32(path, table, first_row, task, params.target, rounded)
            first_row += batch.num_rows
    except (pa.ArrowInvalid, OSError) as error:  # OSError: a compressed file cut short
        labels = params.target if task != REGRESSION else ""
        reason = first_bad_row(path, columns, labels) or first_line(error, 200)
        raise UserError(f"{path}: {reason}") from None


def _csv_columns(path: Path, params: DataParams, wanted: list[str] | None) -> list[str]:
    """The features (listed, or every numeric column but the target) and then the target; or
    the `wanted` columns, all of which the file must have."""
    try:
        schema = pa_csv.open_csv(path, read_options=CSV_READ_OPTIONS).schema
        names = schema.names
    except (pa.ArrowInvalid, OSError) as error:
        reason = first_bad_row(path, []) or f"not a readable CSV ({first_line(error, 200)})"
        raise UserError(f"{path}: {reason}") from None
    except UnicodeDecodeError as error:  # pyarrow reads the bytes; its names decode as UTF-8
        raise UserError(
            f"{path}: the header is not UTF-8 text ({error.reason}); save it as UTF-8"
        ) from None
    # No rows, or rows without a value: then, and only then, every column is of the null type.
    if all(pa.types.is_null(field.type) for field in schema):
        raise UserError(f"{path}: has no rows")
    refuse_duplicate_columns(path, names)
    present = set(names)
    if params.target not in present:
        close = closest_name(params.target, names)
        hint = f"did you mean {close!r}?" if close else f"columns: {quoted_names(names)}"
        raise UserError(f"{path}: data.target column {params.target!r} not found; {hint}")
    if wanted is not None:
        missing = [name for name in wanted if name not in present]
        if missing:
            raise UserError(
                f"{path}: the test split lacks the train split's column(s) {quoted_names(missing)}"
            )
        return wanted
    if params.features is None:
        features = [field.name for field in schema if _is_feature(field, params.target)]
        _refuse_mistyped_numbers(path, schema, params.target)
        if not features:
            raise UserError(f"{path}: no numeric column besides the target {params.target!r}")
    else:
        features = list(params.features)
        missing = [name for name in features if name not in present]
        if missing:
            others = [name for name in names if name != params.target and name not in features]
            raise UserError(
                f"{path}: data.features column(s) not found: {quoted_names(missing)}"
                f"{column_hint(missing[0], others)}"
            )
    return [*features, params.target]


def _is_feature(field: pa.Field, target: str) -> bool:
    """Whether `data.features: null` takes the column: a named column of numbers, not the
    target (an unnamed one is what pandas' `to_csv` writes for the index)."""
    number = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
    return number and field.name not in (target, "")


def left_out_columns(path: str | Path, params: DataParams) -> list[str]:
    """The columns that `data.features: null` leaves out of a CSV: those that are not numbers,
    and one without a name (what pandas' `to_csv` writes for the index)."""
    if params.features is not None:
        return []
    schema = pa_csv.open_csv(path, read_options=CSV_READ_OPTIONS).schema
    return [
        field.name
        for field in schema
        if field.name != params.target and not _is_feature(field, params.target)
    ]


def _refuse_mistyped_numbers(path: Path, schema: pa.Schema, target: str) -> None:
    """A column of numbers but for a few values (`1,000`, `1.O`) is a mistake, not text: pyarrow
    types it as text and `data.features: null` would leave it out without a word."""
    # The target's text is reported as it is read, as a classifier's labels or a bad number.
    texts = [f.name for f in schema if pa.types.is_string(f.type) and f.name != target]
    if not texts:
        return
    block = pa_csv.open_csv(
        path,
        read_options=CSV_READ_OPTIONS,
        convert_options=pa_csv.ConvertOptions(include_columns=texts),
    ).read_next_batch()
    for name in texts:
        given = [
            (row, value) for row, value in enumerate(block.column(name).to_pylist(), 1) if value
        ]
        numbers = [_is_number(value) for _, value in given]
        if given and False in numbers and sum(numbers) >= len(given) / 2:
            row, value = given[numbers.index(False)]
            raise UserError(
                f"{path}: row {row}, column {name!r}: {value[:40]!r} is not a number in a column "
                "of numbers; fix it, or list data.features to leave the column out"
            )


def _is_number(text: str) -> bool:
    """Whether pyarrow reads the text as a number (Python's `float` also takes `1_000`, ` 2`)."""
    try:
        pa.scalar(text).cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _checked_float32(
    path: Path,
    table: pa.Table,
    first_row: int,
    task: str,
    target: str,
    rounded: Rounded | None = None,
) -> pa.Table:
    """The table as float32, refusing missing, infinite and float32-overflowing values."""
    names = table.column_names
    # All columns at once (a wide table has thousands), in column-major order so that each
    # column stays one contiguous vector for the Parquet writer.
    values = np.column_stack([numpy_column(table[name]) for name in names])  # nulls as NaN
    with np.errstate(over="ignore"):  # too large for float32: found just below
        as_float32 = values.astype(np.float32, order="F")
    bad = ~np.isfinite(as_float32)
    if bad.any():
        column = int(np.flatnonzero(bad.any(axis=0))[0])  # the first column with one, as named
        index = int(np.flatnonzero(bad[:, column])[0])
        value, name = values[index, column], names[column]
        problem = (
            "is empty or not a number (fill in or drop such rows)"
            if np.isnan(value)
            else f"{value:g} is beyond float32's range (±3.4e38)"
            if math.isfinite(value)
            else f"{value:g} is not finite"
        )
        raise UserError(f"{path}: row {first_row + index}, column {name!r}: {problem}")
    if task == MULTICLASS and target in names:
        labels = values[:, names.index(target)]
        # float32 holds every whole number up to 2**24 exactly; beyond, labels would merge.
        wrong = np.flatnonzero((labels != np.round(labels)) | (np.abs(labels) > 2**24))
        if wrong.size:
            raise UserError(
                f"{path}: task {MULTICLASS} needs whole-number class labels up to "
                f"±16,777,216; column {target!r} has {labels[wrong[0]]:.15g} at row "
                f"{first_row + int(wrong[0])}"
            )
    if rounded is not None and len(values):
        # float32 keeps about 7 significant digits: a column far from 0 for its spread (a Unix
        # time, an id) is rounded to steps too coarse to tell its values apart.
        spread = values.max(axis=0) - values.min(axis=0)
        step = np.spacing(np.abs(as_float32).max(axis=0)).astype(np.float64)
        differs = as_float32 != values
        coarse = (spread > 0) & (step > spread * COARSEST_STEP) & differs.any(axis=0)
        for place in np.flatnonzero(coarse):
            if names[place] not in rounded:
                index = int(np.flatnonzero(differs[:, place])[0])
                rounded[names[place]] = (
                    float(values[index, place]),
                    float(as_float32[index, place]),
                    float(step[place]),
                )
    checked = {name: as_float32[:, place] for place, name in enumerate(names)}
    if task == CLASSIFICATION:
        labels = checked[target]
        wrong = np.flatnonzero((labels != 0) & (labels != 1))
        if wrong.size:
            raise UserError(
                f"{path}: task {CLASSIFICATION} needs a 0/1 target; column {target!r} "
                f"has {labels[wrong[0]]:g} at row {first_row + int(wrong[0])}"
            )
    return arrow_table(checked)


def first_bad_row(path: Path, columns: list[str], labels: str = "") -> str | None:
    """Where the CSV stops being numbers, found by reading it again row by row (errors only).
    `labels`: a classifier's target column, whose text labels get advice."""
    too_long = first_overlong_line(path)
    if too_long:
        return too_long
    try:
        with io.TextIOWrapper(
            as_pyarrow_reads(path), encoding="utf-8-sig", errors="replace", newline=""
        ) as file:
            reader = csv.reader(file)
            header = next(reader)
            places = {name: place for place, name in enumerate(header)}
            index = {name: places[name] for name in columns}
            row_number = 0
            for row in reader:
                if not row:  # pyarrow skips empty lines: they count as no row
                    continue
                row_number += 1
                if len(row) != len(header):
                    return f"row {row_number} has {len(row)} fields; the header has {len(header)}"
                for name in columns:
                    value = row[index[name]].strip()
                    try:
                        float(value)
                    except ValueError:
                        said = f"row {row_number}, column {name!r}: {value[:40]!r} is not a number"
                        if name == labels:
                            said += "; recode the class labels as 0 and 1 (or 0, 1, 2, ...)"
                        return said
    except (OSError, StopIteration, csv.Error, ValueError, KeyError):
        return None
    return None


def first_overlong_line(path: Path) -> str | None:
    """The first line longer than pyarrow's block, which pyarrow cannot read, found without
    holding more than a block: read whole, such a line (a 1 GB header) could fill the memory.
    Lines end as pyarrow ends them (LF, CRLF or CR), and empty ones count as no row."""
    limit = CSV_READ_OPTIONS.block_size
    try:
        # latin-1: a character a byte, so that a line's length is its size.
        with io.TextIOWrapper(as_pyarrow_reads(path), encoding="latin-1", newline=None) as file:
            row = -1  # the header is row 0
            for line in iter(lambda: file.readline(limit + 1), ""):
                if line == "\n":
                    continue
                row += 1
                if len(line) > limit:
                    what = f"row {row}" if row else "the header"
                    return (
                        f"{what} is longer than {limit >> 20} MiB, the block in which a CSV is "
                        "read (is it a CSV with one row per line?)"
                    )
    except OSError:
        return None
    return None


def refuse_what_is_not_csv_text(path: Path, one_column_names: Collection[str] = ()) -> None:
    """A file that pyarrow would misread as a CSV of odd field counts, named for what it is: a
    compressed file without its extension or a plain one with it, an archive, UTF-16 text, or a
    header separated by another character than the comma. `one_column_names`: headers of one
    column that are right (a model's only feature)."""
    try:
        with as_pyarrow_reads(path) as stream:
            head = stream.readline(CSV_READ_OPTIONS.block_size)
    except OSError:
        with open(path, "rb") as file:
            first_bytes = file.read(16)
        magic = COMPRESSED.get(path.suffix)
        if magic and not magic.match(first_bytes):
            raise UserError(
                f"{path}: the file is not compressed as its extension says; name it {path.stem}"
            ) from None
        return  # pyarrow fails on it too, with its own message
    for extension, magic in COMPRESSED.items():
        if magic.match(head):
            name = (path.stem if path.suffix.lower() == extension else path.name) + extension
            raise UserError(f"{path}: the file is compressed; name it {name}, which is read")
    for magic, what in ARCHIVES.items():
        if head.startswith(magic):
            raise UserError(f"{path}: the file is {what} and give the CSV inside")
    if b"\0" in head:
        raise UserError(
            f"{path}: the header holds NUL bytes (UTF-16 or UTF-32 text, or no text at all); "
            "save the file as a UTF-8 CSV"
        )
    # Decoded as pyarrow does (a byte-order mark is no part of a name); a line may end in \r.
    header = head.decode("utf-8-sig", "replace")
    try:
        names = _first_record(header, ",")
        if len(names) != 1 or names[0] in one_column_names:
            return
        separators = [sep for sep in OTHER_SEPARATORS if len(_first_record(header, sep)) > 1]
    except csv.Error:
        return  # no CSV header at all: pyarrow names what it finds
    if separators:
        raise UserError(
            f"{path}: the header has {separators[0]!r} between names and no comma; save the "
            "file comma-separated, with '.' in numbers"
        )


def _first_record(text: str, separator: str) -> list[str]:
    return next(csv.reader(io.StringIO(text, newline=""), delimiter=separator), [])


def as_pyarrow_reads(path: Path) -> io.BufferedReader:
    """The file's bytes as pyarrow's CSV reader takes them: decompressed where its extension
    names a compression."""
    return io.BufferedReader(pa.input_stream(str(path)))


def column_hint(missing: str, others: list[str]) -> str:
    """`; did you mean 'X'?` for a missing column spelt like one of the `others` (the columns
    not already asked for); "" where none is."""
    close = closest_name(missing, others)
    return f"; did you mean {close!r}?" if close else ""


def refuse_duplicate_columns(path: Path, names: list[str]) -> None:
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise UserError(f"{path}: column name(s) used twice: {quoted_names(duplicated)}")


def quoted_names(names: list[str]) -> str:
    """Column names as a message shows them: quoted, for a name with a space or a comma."""
    if len(names) <= 21:  # "..." would hide one name
        return ", ".join(map(repr, names))
    # The last too: where a table most often keeps its target.
    return f"{', '.join(map(repr, names[:19]))}, ..., {names[-1]!r} ({len(names)} in all)"
