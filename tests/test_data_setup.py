"""The data: the course's line, the user's CSV, Parquet chunks and the split (no torch)."""

import bz2
import gzip
import io
import json
import lzma
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pytorch_workflow.csv_data import (
    csv_chunks,
    left_out_columns,
    refuse_what_is_not_csv_text,
    write_csv_dataset,
)
from pytorch_workflow.data_setup import (
    ColumnStats,
    checked_classes,
    course_arange,
    line_chunks,
    read_features,
    read_split,
    row_keys,
    split_dataset,
)
from pytorch_workflow.errors import UserError
from pytorch_workflow.tables import ParquetTable, arrow_table, numpy_column, write_table
from tests.conftest import imported
from tests.helpers import COURSE_DATA, course_split, data_params, split_params, table_file


def line(params=COURSE_DATA, seed=42) -> dict[str, np.ndarray]:
    table = pa.concat_tables(list(line_chunks(params, seed)))
    return {name: table[name].to_numpy() for name in table.column_names}


def test_course_data_is_fifty_rows_on_the_course_line_bit_for_bit():
    data = line()
    X = torch.arange(0, 1, 0.02).unsqueeze(dim=1)

    assert len(data["x"]) == 50 and data["x"].dtype == np.float32
    assert np.array_equal(data["x"], X.numpy()[:, 0])
    assert np.array_equal(data["y"], (0.7 * X + 0.3).numpy()[:, 0])


@pytest.mark.parametrize(
    ("start", "end", "step"), [(0, 1, 0.02), (-3.5, 7.25, 0.013), (0, 10, 0.001)]
)
def test_course_arange_matches_torch_arange(start, end, step):
    expected = torch.arange(start, end, step).numpy()

    assert np.array_equal(course_arange(start, step, len(expected), 0, len(expected)), expected)


@pytest.mark.parametrize("chunk_rows", [7, 64, 1000])
def test_chunks_of_any_size_make_the_same_line_and_the_same_noise(chunk_rows):
    noisy = data_params(noise_std=0.1, step=0.001)

    chunked = line(data_params(noise_std=0.1, step=0.001, chunk_rows=chunk_rows))

    whole = line(noisy)
    assert all(np.array_equal(chunked[name], whole[name]) for name in ("x", "y"))


def test_a_line_that_overflows_float32_is_refused():
    with pytest.raises(UserError, match="overflows float32"):
        line(data_params(weight=1e38, end=10.0, step=1.0))


def test_written_chunks_become_row_groups_of_chunk_rows(tmp_path):
    table = table_file(
        tmp_path / "t.parquet", {"x": np.arange(10), "y": np.arange(10)}, chunk_rows=4
    )

    assert table.rows == 10 and table.offsets == [0, 4, 8, 10]
    assert table.chunk(1)["x"].tolist() == [4, 5, 6, 7]


def test_writing_the_same_table_twice_gives_the_same_bytes(tmp_path):
    for name in ("a", "b"):
        write_table(tmp_path / f"{name}.parquet", line_chunks(COURSE_DATA, 42), 1000)

    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


_CLOSE = pq.ParquetWriter.close


def _disk_full(writer):
    """ParquetWriter.close that fails as a full disk would, once (closed all the same)."""
    if writer.is_open:
        _CLOSE(writer)
        raise OSError(28, "No space left on device")


_X = np.arange(3, dtype=np.float32)


# Each fails as the table is finished: its last row group (a mismatched chunk), no rows at all,
# or its footer (a full disk).
@pytest.mark.parametrize(
    ("chunks", "broken_close", "error", "message"),
    [
        (
            [arrow_table({"x": _X, "y": _X}), arrow_table({"x": _X[:1]})],
            False,
            pa.ArrowInvalid,
            None,
        ),
        ([], False, UserError, "nothing to write"),
        ([arrow_table({"x": _X, "y": _X})], True, OSError, "No space left"),
    ],
    ids=["last row group", "no rows", "footer"],
)
def test_a_table_that_fails_while_it_is_finished_is_not_published(
    tmp_path, monkeypatch, chunks, broken_close, error, message
):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"before")
    if broken_close:
        monkeypatch.setattr(pq.ParquetWriter, "close", _disk_full)

    with pytest.raises(error, match=message):
        write_table(path, chunks, chunk_rows=10)

    assert path.read_bytes() == b"before"
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"", "not a readable Parquet file"),
        (b"PAR1 torn", "not a readable"),
    ],
)
def test_unreadable_tables_are_named(tmp_path, content, message):
    path = tmp_path / "train.parquet"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(UserError, match=message) as error:
        ParquetTable(path)
    assert str(path) in str(error.value)


def test_missing_columns_and_bad_values_are_named(tmp_path):
    table = table_file(tmp_path / "t.parquet", {"x": [0.0, 1.0], "y": [1.0, np.nan]})

    with pytest.raises(UserError, match="missing column"):
        ParquetTable(table.path, ("x", "z"))
    with pytest.raises(UserError, match="column y has a NaN or infinite value at row 1"):
        table.chunk(0)


# ---- the user's CSV ----


def read_csv(path, task="regression", **params):
    options = {"source": "csv", "path": str(path), **params}
    chunks = list(csv_chunks(data_params(**options), task, str(path)))
    table = pa.concat_tables(chunks)
    return {name: table[name].to_numpy() for name in table.column_names}


def test_a_column_that_float32_rounds_coarsely_for_its_spread_is_reported(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text(
        "time,people,small,y\n"
        "1700000037.25,30000001,16777216,1\n1700000074,20000003,3,2\n1700000000,10000007,4,3\n"
    )
    rounded = {}
    options = {"source": "csv", "path": str(path), "target": "y"}

    list(csv_chunks(data_params(**options), "regression", str(path), rounded=rounded))

    # float32's step near 1.7e9 is 128, against a spread of 74; near 3e7 it is 2, against 2e7.
    assert rounded == {"time": (1700000037.25, 1700000000.0, 128.0)}


def test_features_default_to_every_numeric_column_but_the_target(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("a,name,y,b\n1,p,3.0,0.5\n2,q,4.0,0.25\n")

    table = read_csv(path)

    assert list(table) == ["a", "b", "y"]
    assert all(values.dtype == np.float32 for values in table.values())


@pytest.mark.parametrize("value", ['"1,000"', "1.O"])
def test_a_column_of_numbers_with_a_typo_is_refused_not_left_out(tmp_path, value):
    path = tmp_path / "own.csv"
    path.write_text(f"a,area,y\n1,120.5,3.0\n2,{value},4.0\n3,99,5.0\n")

    with pytest.raises(UserError, match=r"row 2, column 'area': .* is not a number in a column"):
        read_csv(path)


def test_the_columns_left_out_are_named(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("a,name,y,city\n1,p,3.0,x\n2,q,4.0,y\n")

    assert left_out_columns(path, data_params(source="csv", path=str(path))) == ["name", "city"]


def test_an_unnamed_column_a_saved_index_is_left_out(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text(",a,y\n0,1.5,3.0\n1,2.5,4.0\n")

    assert list(read_csv(path)) == ["a", "y"]
    assert left_out_columns(path, data_params(source="csv", path=str(path))) == [""]


def test_a_header_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "own.csv"
    path.write_bytes(b"caf\xe9,y\n1,2\n")

    with pytest.raises(UserError, match="the header is not UTF-8 text"):
        read_csv(path)


def zipped(data: bytes) -> bytes:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("own.csv", data)
    return packed.getvalue()


CSV = b"a,y\n1,2\n3,4\n"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "own.csv",
            gzip.compress(CSV),
            "the file is compressed; name it own.csv.gz, which is read",
        ),
        (
            "own.csv",
            bz2.compress(CSV),
            "the file is compressed; name it own.csv.bz2, which is read",
        ),
        ("own.CSV.GZ", gzip.compress(CSV), "the file is compressed; name it own.CSV.gz, which is"),
        ("own.csv.gz", CSV, "the file is not compressed as its extension says; name it own.csv"),
        ("own.csv.xz", lzma.compress(CSV), "the file is xz-compressed: unxz it and give the CSV"),
        ("own.zip", zipped(CSV), "the file is a zip archive: unzip it and give the CSV inside"),
        ("own.csv", CSV.decode().encode("utf-16"), "the header holds NUL bytes"),
        ("own.csv", CSV.decode().encode("utf-16-le"), "the header holds NUL bytes"),
        ("own.csv.gz", gzip.compress(CSV.replace(b",", b";")), "has ';' between names and no"),
        ("own.csv", CSV.replace(b",", b"|"), "has '|' between names and no comma"),
        # Rows as pyarrow counts them: without empty lines, and ended by CR too.
        ("own.csv.gz", gzip.compress(b"a,y\n1,2\n\n3,4,5\n"), "row 2 has 3 fields; the header"),
        ("own.csv", b"a,y\r1,2\r\r3,x\r", "row 2, column 'y': 'x' is not a number"),
        ("own.csv", b"a,y\n\n\n1,2\n" + b"2," * 2_500_000 + b"3\n", "row 2 is longer than 4 MiB"),
        ("own.csv", b"a" * 200_000 + b"\n1\n", "data.target column 'y' not found"),
    ],
    ids=[
        "gzip-named-csv",
        "bz2-named-csv",
        "upper-case",
        "plain-named-gz",
        "xz",
        "zip",
        "utf-16",
        "utf-16-le",
        "gzip-semicolons",
        "bars",
        "gzip-blank-line",
        "cr",
        "overlong-after-blank-lines",
        "huge-name",
    ],
)
def test_a_file_that_pyarrow_would_misread_is_named_for_what_it_is(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)

    with pytest.raises(UserError) as error:
        read_csv(path)

    assert message in str(error.value) and str(error.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("own.csv.gz", gzip.compress(CSV)),
        ("own.csv.bz2", bz2.compress(CSV)),
        ("own.csv", CSV.replace(b"a,", b"BZh9 score,")),  # bzip2's first bytes
        ("own.csv", CSV.replace(b"a,", b'"a;b",')),  # a quoted ';'
        ("own.csv", CSV.replace(b"\n", b"\r")),  # old Mac line endings
        ("own.csv", b"\xef\xbb\xbf" + CSV.replace(b"\n", b"\r\n")),  # Excel's
    ],
    ids=["gz", "bz2", "bzh-name", "quoted-semicolon", "cr", "bom-crlf"],
)
def test_a_compressed_csv_with_its_extension_or_an_odd_header_is_read(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)

    assert read_csv(path)["y"].tolist() == [2, 4]


def test_a_one_column_header_is_no_separator_mistake_where_it_names_the_feature(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a;b\n1\n")

    refuse_what_is_not_csv_text(path, one_column_names=["a;b"])
    with pytest.raises(UserError, match="the header has ';' between names and no comma"):
        refuse_what_is_not_csv_text(path, one_column_names=["x"])
    path.write_text('"a;b"\n1\n')  # quoted: one name
    refuse_what_is_not_csv_text(path, one_column_names=["x"])


def test_a_stray_text_in_a_classifiers_target_gets_the_labels_advice(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("a,t\n1,0\n2,1\n3,1\n\n4,B\n")

    with pytest.raises(UserError) as error:
        read_csv(path, "binary_classification", target="t")

    assert str(error.value).endswith(
        "row 4, column 't': 'B' is not a number; recode the class labels as 0 and 1 (or 0, 1, 2, "
        "...)"
    )


def test_listed_features_are_taken_in_order(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("a,b,c,y\n1,3,5,0\n2,4,6,1\n")

    assert list(read_csv(path, features=("c", "a"))) == ["c", "a", "y"]


@pytest.mark.parametrize(
    ("content", "params", "task", "message"),
    [
        (None, {}, "regression", "data.path not found"),
        ("", {}, "regression", "not a readable CSV"),
        ("a,y\n", {}, "regression", "has no rows"),
        ("a,b\n1,2\n", {}, "regression", "data.target column 'y' not found; columns: 'a', 'b'"),
        ("a,y\n1,2\n", {"features": ("a", "z")}, "regression", "column(s) not found: 'z'"),
        (
            "a,Price\n1,2\n",
            {"target": "price"},
            "regression",
            "'price' not found; did you mean 'Price'?",
        ),
        (
            ",".join(f"p{i}" for i in range(64)) + ",label\n" + "1," * 64 + "2\n",
            {"target": "target"},
            "regression",
            "columns: 'p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9', 'p10', 'p11', "
            "'p12', 'p13', 'p14', 'p15', 'p16', 'p17', 'p18', ..., 'label' (65 in all)",
        ),
        (
            "ab,yy\n1,2\n",
            {"features": ("abc",), "target": "yy"},
            "regression",
            "did you mean 'ab'?",
        ),
        (
            "a,y\n1,2\nq,3\n",
            {"features": ("a",)},
            "regression",
            "row 2, column 'a': 'q' is not a number",
        ),
        ("name,y\np,2\n", {}, "regression", "no numeric column besides the target"),
        ("a,y\n1,2\n,3\n", {}, "regression", "row 2, column 'a': is empty or not a number"),
        (
            "a,y\n1,2\n1e39,3\n",
            {},
            "regression",
            "row 2, column 'a': 1e+39 is beyond float32's range",
        ),
        ("a,y\n1,2\n3,inf\n", {}, "regression", "row 2, column 'y': inf is not finite"),
        (
            "a,y\n1,0\n2,2\n",
            {},
            "binary_classification",
            "needs a 0/1 target; column 'y' has 2 at row 2",
        ),
        ("a,a,y\n1,2,3\n", {}, "regression", "column name(s) used twice: 'a'"),
        ("a,y\n1,2\n3,4,5\n", {}, "regression", "row 2 has 3 fields; the header has 2"),
        (
            "a,y\n1,B\n2,M\n",
            {},
            "binary_classification",
            "row 1, column 'y': 'B' is not a number; recode the class labels as 0 and 1",
        ),
        (
            "a;y\n1,5;2\n",
            {},
            "regression",
            "the header has ';' between names and no comma; save the file comma-separated",
        ),
        ("a\ty\n1\t2\n", {}, "regression", "the header has '\\t' between names and no comma"),
    ],
    ids=[
        "missing",
        "empty",
        "no-rows",
        "no-target",
        "missing-feature",
        "target-in-another-case",
        "target-of-many-columns",
        "misspelt-feature",
        "text",
        "no-features",
        "blank",
        "overflow",
        "inf",
        "non-binary",
        "duplicate",
        "ragged",
        "text-labels",
        "semicolons",
        "tabs",
    ],
)
def test_bad_csv_names_the_file_row_and_column(tmp_path, content, params, task, message):
    path = tmp_path / "own.csv"
    if content is not None:
        path.write_text(content)

    with pytest.raises(UserError) as error:
        read_csv(path, task, **params)

    assert str(path) in str(error.value) and message in str(error.value)


def test_data_path_that_is_a_folder_or_a_pipe_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe")

    with pytest.raises(UserError, match="is a folder"):
        read_csv(tmp_path)
    with pytest.raises(UserError, match="not a regular file"):
        read_csv(tmp_path / "pipe")  # a read would wait for a writer forever


def test_a_csv_larger_than_a_block_streams_in_order(tmp_path):
    rows = 300_000
    path = tmp_path / "big.csv"
    values = np.arange(rows)
    path.write_text("a,y\n" + "".join(f"{v},{v % 7}\n" for v in values))

    table = read_csv(path)

    assert np.array_equal(table["a"], values.astype(np.float32))


# ---- the split ----


def split(tmp_path, columns, params, task="regression", seed=7, chunk_rows=1000):
    dataset = table_file(tmp_path / "dataset.parquet", columns, chunk_rows)
    summary, _ = split_dataset(dataset, params, task, seed, tmp_path / "split.parquet")
    read = read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")
    return summary, {t.side: np.concatenate([c["x"] for c in t]) for t in read}


def test_the_split_takes_the_first_eighty_percent_for_training(tmp_path):
    train, test, _ = course_split(tmp_path)

    assert (train.rows, test.rows) == (40, 10)
    assert train.chunk(0)["x"][-1] == np.float32(0.78) and test.chunk(0)["x"][0] == np.float32(0.8)


@pytest.mark.parametrize("chunk_rows", [1000, 37])
def test_a_shuffled_split_has_the_exact_count_and_does_not_depend_on_chunks(tmp_path, chunk_rows):
    columns = {"x": np.arange(1000), "y": np.zeros(1000)}

    summary, sides = split(tmp_path, columns, split_params(shuffle=True), chunk_rows=chunk_rows)

    assert summary.rows == {"train": 800, "test": 200}
    assert not np.array_equal(sides["train"], np.arange(800))
    assert np.array_equal(np.sort(np.concatenate(list(sides.values()))), np.arange(1000))
    keys = row_keys(7, 0, 1000)
    assert np.array_equal(sides["train"], np.flatnonzero(keys <= np.sort(keys)[799]))


def test_the_split_records_which_rows_are_train_rows_and_copies_none(tmp_path):
    columns = {"x": np.arange(1000), "y": np.zeros(1000)}

    split(tmp_path, columns, split_params(shuffle=True), chunk_rows=37)
    train, test = read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")
    recorded = pq.ParquetFile(tmp_path / "split.parquet")
    bits = recorded.read().column("train").to_numpy()

    keys = row_keys(7, 0, 1000)
    expected = keys <= np.sort(keys)[799]
    assert recorded.schema_arrow.types == [pa.bool_()] and np.array_equal(bits, expected)
    # Row groups as in the dataset (27 of 37 rows and one of 1), the train rows of each counted
    # in the footer.
    groups = [recorded.metadata.row_group(g).num_rows for g in range(recorded.num_row_groups)]
    dataset_groups = np.diff(ParquetTable(tmp_path / "dataset.parquet").offsets).tolist()
    assert groups == [37] * 27 + [1] == dataset_groups
    footer = json.loads(recorded.metadata.metadata[b"pytorch_workflow.train_rows"])
    assert footer == [int(expected[start : start + 37].sum()) for start in range(0, 1000, 37)]
    # Each side reads its rows from the dataset, in the dataset's order.
    assert np.array_equal(np.concatenate([c["x"] for c in train]), np.flatnonzero(expected))
    assert np.array_equal(np.concatenate([c["x"] for c in test]), np.flatnonzero(~expected))
    assert train.offsets == [0, *np.cumsum([len(chunk["x"]) for chunk in train]).tolist()]
    # A bit a row: a fraction of the dataset it splits.
    size = {name: (tmp_path / f"{name}.parquet").stat().st_size for name in ("split", "dataset")}
    assert size["split"] < size["dataset"] / 3


def write_split_file(path: Path, column: pa.Array, footer: bytes | None, group_rows: int) -> None:
    table = pa.table({"train": column})
    if footer is not None:
        table = table.replace_schema_metadata({"pytorch_workflow.train_rows": footer})
    path.unlink()
    pq.write_table(table, path, row_group_size=group_rows)


@pytest.mark.parametrize(
    ("column", "footer", "message"),
    [
        (pa.array([True] * 8 + [False] * 2), None, "its footer does not count the train rows"),
        (pa.array([1] * 8 + [0] * 2, pa.int8()), b"[5, 3]", "not one true/false column"),
        (pa.array([True] * 8 + [False] * 2), b"[5,", "count of the train rows is damaged"),
        (pa.array([True] * 8 + [False] * 2), b"[" * 100_000, "count of the train rows is damaged"),
        (pa.array([True] * 8 + [False] * 2), b"[5, 6]", "count of the train rows is damaged"),
    ],
    ids=["no counts", "not true/false", "torn counts", "nested counts", "too many"],
)
def test_a_damaged_split_file_is_named_with_its_problem(tmp_path, column, footer, message):
    split(tmp_path, {"x": np.arange(10), "y": np.zeros(10)}, split_params(), chunk_rows=5)
    write_split_file(tmp_path / "split.parquet", column, footer, 5)

    with pytest.raises(UserError, match=f"split.parquet: not the split of .*{message}"):
        read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")


def test_a_split_whose_counts_disagree_with_its_bits_is_refused_when_read(tmp_path):
    split(tmp_path, {"x": np.arange(10), "y": np.zeros(10)}, split_params(), chunk_rows=5)
    bits = pa.array([True, False, True, False, True] + [False] * 5)
    write_split_file(tmp_path / "split.parquet", bits, b"[2, 0]", 5)

    train, _ = read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")
    with pytest.raises(UserError, match="footer's row counts do not match its rows"):
        train.chunk(0)


def test_a_split_file_of_another_dataset_is_refused(tmp_path):
    split(tmp_path / "a", {"x": np.arange(100), "y": np.zeros(100)}, split_params(), chunk_rows=50)
    split(tmp_path / "b", {"x": np.arange(100), "y": np.zeros(100)}, split_params(), chunk_rows=40)

    with pytest.raises(UserError, match=r"split\.parquet: not the split of .*line up"):
        read_split(tmp_path / "a/dataset.parquet", tmp_path / "b/split.parquet")


def test_a_shuffled_split_is_seeded(tmp_path):
    columns = {"x": np.arange(100), "y": np.zeros(100)}
    first = split(tmp_path / "a", columns, split_params(shuffle=True), seed=1)[1]
    again = split(tmp_path / "b", columns, split_params(shuffle=True), seed=1)[1]
    other = split(tmp_path / "c", columns, split_params(shuffle=True), seed=2)[1]

    assert np.array_equal(first["train"], again["train"])
    assert not np.array_equal(first["train"], other["train"])


def ordered_and_stratified(tmp_path, columns, task):
    """The summaries of a split in the file's order and of a stratified one."""
    ordered, _ = split(tmp_path / "a", columns, split_params(), task=task)
    stratified, _ = split(
        tmp_path / "b", columns, split_params(stratify=True, shuffle=True), task=task
    )
    return ordered, stratified


def test_a_stratified_split_keeps_each_class_share_and_reports_the_balance(tmp_path):
    labels = (np.arange(1000) >= 700).astype(np.float32)  # sorted: the class 1 rows come last
    columns = {"x": np.arange(1000), "y": labels}

    ordered, stratified = ordered_and_stratified(tmp_path, columns, "binary_classification")

    assert ordered.metrics()["test"]["class_1_share"] == 1.0
    assert "split.shuffle: true" in ordered.imbalance()
    assert stratified.metrics()["train"] == {"rows": 800, "class_1_share": 0.3}
    assert stratified.metrics()["test"] == {"rows": 200, "class_1_share": 0.3}
    assert stratified.imbalance() is None


def test_a_multiclass_split_names_the_class_whose_share_differs_most(tmp_path):
    labels = np.repeat([0.0, 1.0, 2.0], [400, 350, 250])  # sorted: test holds only class 2
    columns = {"x": np.arange(1000), "y": labels}

    ordered, stratified = ordered_and_stratified(tmp_path, columns, "multiclass_classification")

    many = {"x": np.arange(1000), "y": np.repeat(np.arange(100.0), 10)}  # 2 rows each in test
    random, _ = split(
        tmp_path / "c", many, split_params(shuffle=True), task="multiclass_classification"
    )

    assert ordered.imbalance() == (
        "the share of class 2 is 0.0625 in train and 1 in test, 54.8 standard errors apart: more "
        "than a random split would give. The split follows the file's row order, as the course's "
        "does; split.shuffle: true draws a random one"
    )
    assert stratified.imbalance() is None
    assert random.imbalance() is None  # no class common enough to compare


def test_a_binary_split_that_leaves_train_one_class_is_refused_and_writes_nothing(tmp_path):
    labels = (np.arange(100) >= 80).astype(np.float32)  # sorted: train would hold only 0s
    message = (
        r"the train split has only class 0 \(80 rows\); a model needs rows of both 0 and 1 "
        r"to learn \(split.stratify: true puts each class in both splits\)$"
    )
    with pytest.raises(UserError, match=message):
        split(tmp_path, {"x": np.arange(100), "y": labels}, split_params(), "binary_classification")

    assert not (tmp_path / "split.parquet").exists()
    # A given test split (data.test_path) is not drawn: no split param would change it.
    sides = {"train": Counter({0.0: 1}), "test": Counter({0.0: 1, 1.0: 1})}
    with pytest.raises(UserError, match=r"\(1 row\); a model needs rows of both 0 and 1 to learn$"):
        checked_classes(sides, "binary_classification", drawn=False)


def test_a_split_that_leaves_a_side_empty_is_refused(tmp_path):
    with pytest.raises(UserError, match="leaves an empty split of 2 rows"):
        split(tmp_path, {"x": [0.0, 1.0], "y": [0.0, 1.0]}, split_params(train_fraction=0.2))


def test_column_statistics_merged_by_chunk_match_numpy():
    values = np.random.default_rng(0).normal(5, 3, 10_001).astype(np.float32)
    stats = ColumnStats.empty(1)
    for start in range(0, len(values), 999):
        stats.add([values[start : start + 999]])

    assert stats.mean[0] == pytest.approx(values.astype(np.float64).mean(), rel=1e-14)
    assert stats.std[0] == pytest.approx(values.astype(np.float64).std(), rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"features": ["x"], "target": "y", "mean": [0.5], "std": [0.0]}',
            "needs a finite mean and a std > 0",
        ),
        (
            '{"features": ["x"], "target": "y", "mean": [0.5], "std": null}',
            "both be set or both be null",
        ),
        (
            '{"features": ["x"], "target": "y", "mean": [1, 2], "std": [1, 2]}',
            "one value per feature",
        ),
        ('{"features": []}', "not a readable features file"),
    ],
)
def test_a_damaged_features_file_is_named_with_its_problem(tmp_path, text, message):
    path = tmp_path / "features.json"
    path.write_text(text)

    with pytest.raises(UserError, match=message):
        read_features(path)


# ---- Arrow and numpy without pyarrow's pandas layer ------------------------------------------


def test_numpy_column_reads_slices_chunks_and_empty_columns_as_to_numpy_does():
    values = np.arange(10, dtype=np.float32) / 3
    table = arrow_table({"a": values, "b": values.astype(np.float64)})
    chunked = pa.chunked_array([table["a"].chunk(0).slice(2, 3), table["a"].chunk(0).slice(7)])

    assert np.array_equal(numpy_column(table["a"]), values)
    assert numpy_column(table["b"]).dtype == np.float64
    assert np.array_equal(numpy_column(chunked), chunked.to_numpy())
    assert numpy_column(table["a"].slice(4, 0)).shape == (0,)
    # Booleans are packed eight to a byte, in Arrow's order, and read back from any offset.
    flags = np.arange(29) % 3 == 0
    packed = arrow_table({"b": flags})["b"]
    assert packed.to_pylist() == flags.tolist()
    pieces = pa.chunked_array([packed.chunk(0).slice(9, 11), packed.chunk(0).slice(3, 2)])
    assert np.array_equal(numpy_column(pieces), np.concatenate([flags[9:20], flags[3:5]]))
    # What is not a plain vector of numbers goes through pyarrow's own conversion.
    assert arrow_table({"s": np.array(["a", "b"])})["s"].to_pylist() == ["a", "b"]


def test_numpy_column_turns_nulls_into_nan_and_reads_other_types_through_pyarrow():
    with_null = pa.array([1.5, None], type=pa.float32())

    assert np.isnan(numpy_column(with_null)[1]) and numpy_column(with_null)[0] == 1.5
    assert numpy_column(pa.array([1, 2], type=pa.int64())).tolist() == [1, 2]


def test_the_data_functions_round_trip_a_parquet_file_without_importing_pandas(tmp_path):
    code = (
        "import numpy as np\n"
        "from pytorch_workflow.tables import ParquetTable, arrow_table, write_table\n"
        "x = np.arange(5, dtype=np.float32)\n"
        f"write_table({str(tmp_path / 't.parquet')!r}, [arrow_table({{'x': x, 'y': x}})], 2)\n"
        f"chunk = ParquetTable({str(tmp_path / 't.parquet')!r}).chunk(1)\n"
        "assert chunk['x'].tolist() == [2.0, 3.0]\n"
        "from pathlib import Path\n"
        "from pytorch_workflow.data_setup import read_split, split_dataset\n"
        "from pytorch_workflow.params import SplitParams\n"
        f"folder = Path({str(tmp_path)!r})\n"
        "split_dataset(ParquetTable(folder / 't.parquet'), SplitParams(0.4, True, False), "
        "'regression', 0, folder / 'split.parquet')\n"
        "train, test = read_split(folder / 't.parquet', folder / 'split.parquet')\n"
        "assert train.rows == 2 and test.chunk(0)['y'].dtype == np.float32"
    )

    assert imported(code, ("pandas",)) == []


def test_pyarrow_still_imports_pandas_in_its_own_conversions():
    # When this fails, pyarrow no longer needs pandas for these conversions: drop
    # tables.numpy_column and arrow_table and use to_numpy and pa.table again.
    code = "import numpy as np, pyarrow as pa\npa.array(np.zeros(2, np.float32)).to_numpy()"

    assert imported(code, ("pandas",)) == ["pandas"]


# ---- a given test split (data.test_path) ----


def given_split(
    tmp_path,
    test_text="x,label\n5,1\n6,0\n",
    task="binary_classification",
    chunk_rows=1000,
    **params,
):
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "train.csv").write_text("x,label\n1,0\n2,1\n3,0\n")
    test = raw / "test.csv"
    if not test.exists():
        test.write_text(test_text)
    options = {
        "source": "csv",
        "path": str(raw / "train.csv"),
        "test_path": str(test),
        "target": "label",
        **params,
    }
    dataset = tmp_path / "dataset.parquet"
    rows = write_csv_dataset(data_params(**options), task, dataset, chunk_rows, raw)
    return rows, ParquetTable(dataset)


def test_the_given_test_split_follows_train_and_the_footer_counts_its_rows(tmp_path):
    (rows, test_rows, _), dataset = given_split(tmp_path)

    assert (rows, test_rows, dataset.given_test_rows) == (5, 2, 2)
    assert dataset.chunk(0)["x"].tolist() == [1, 2, 3, 5, 6]


def test_a_given_test_split_that_starts_inside_a_row_group_is_the_test_side(tmp_path):
    _, dataset = given_split(tmp_path, chunk_rows=2)  # groups: 1 2 | 3 5 | 6
    split_dataset(dataset, split_params(), "binary_classification", 42, tmp_path / "split.parquet")

    train, test = read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")

    assert [chunk["x"].tolist() for chunk in train] == [[1, 2], [3]]
    assert [chunk["x"].tolist() for chunk in test] == [[5], [6]]
    assert (train.offsets, test.offsets) == ([0, 2, 3], [0, 1, 2])


def test_a_given_test_split_that_dvc_links_into_its_cache_is_still_in_the_folder(tmp_path):
    cached = tmp_path / "cache" / "ab12"
    cached.parent.mkdir()
    cached.write_text("x,label\n5,1\n")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "test.csv").symlink_to(cached)

    assert given_split(tmp_path)[0][:2] == (4, 1)


@pytest.mark.parametrize(
    ("test_path", "message"),
    [
        ("elsewhere.csv", "data.test_path must be in"),
        ("raw/train.csv", "data.test_path is data.path"),
        ("raw/missing.csv", "raw/missing.csv: data.test_path not found"),
    ],
)
def test_a_wrong_test_path_is_one_line_and_writes_nothing(tmp_path, test_path, message):
    (tmp_path / "elsewhere.csv").write_text("x,label\n5,1\n")
    with pytest.raises(UserError, match=message):
        given_split(tmp_path, test_path=str(tmp_path / test_path))

    assert not (tmp_path / "dataset.parquet").exists()


def test_a_test_split_without_a_train_column_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"the test split lacks the train split's column\(s\) 'x'"):
        given_split(tmp_path, test_text="z,label\n5,1\n")


def test_class_labels_beyond_float32s_whole_numbers_are_refused(tmp_path):
    with pytest.raises(UserError, match="column 'label' has 20240101 at row 1"):
        given_split(tmp_path, test_text="x,label\n5,20240101\n", task="multiclass_classification")
