import numpy as np
import pandas as pd
import pytest
import torch

from pytorch_workflow.data import (
    course_arange,
    make_line_data,
    read_table,
    split_data,
    write_table,
)
from pytorch_workflow.errors import UserError
from pytorch_workflow.params import DataParams, SplitParams

COURSE_DATA = DataParams(weight=0.7, bias=0.3, start=0.0, end=1.0, step=0.02, noise_std=0.0)


def test_course_data_is_fifty_rows_on_the_course_line():
    dataset = make_line_data(COURSE_DATA, seed=42)

    assert len(dataset) == 50
    assert dataset["x"].dtype == np.float32 and dataset["y"].dtype == np.float32
    np.testing.assert_allclose(dataset["x"][:3], [0.0, 0.02, 0.04], rtol=1e-6)
    np.testing.assert_allclose(dataset["y"][:3], [0.3, 0.314, 0.328], rtol=1e-6)
    assert dataset["x"].iloc[-1] == np.float32(0.98)


def test_course_data_equals_torch_bit_for_bit():
    dataset = make_line_data(COURSE_DATA, seed=42)
    X = torch.arange(0, 1, 0.02).unsqueeze(dim=1)
    y = 0.7 * X + 0.3

    assert np.array_equal(dataset["x"].to_numpy(), X.numpy()[:, 0])
    assert np.array_equal(dataset["y"].to_numpy(), y.numpy()[:, 0])


@pytest.mark.parametrize(
    ("start", "end", "step"), [(0, 1, 0.02), (-3.5, 7.25, 0.013), (0, 10, 0.001), (1, 2, 0.3)]
)
def test_course_arange_matches_torch_arange(start, end, step):
    assert np.array_equal(course_arange(start, end, step), torch.arange(start, end, step).numpy())


def test_noise_is_seeded():
    noisy = DataParams(**{**COURSE_DATA.__dict__, "noise_std": 0.05})

    first, again = make_line_data(noisy, seed=1), make_line_data(noisy, seed=1)
    other_seed = make_line_data(noisy, seed=2)

    pd.testing.assert_frame_equal(first, again)
    assert not first["y"].equals(other_seed["y"])
    assert first["y"].dtype == np.float32


def test_split_takes_the_first_eighty_percent_for_training():
    dataset = make_line_data(COURSE_DATA, seed=42)

    train, test = split_data(dataset, SplitParams(train_fraction=0.8, shuffle=False), seed=42)

    assert (len(train), len(test)) == (40, 10)
    assert train["x"].iloc[-1] == dataset["x"].iloc[39]
    assert test["x"].iloc[0] == dataset["x"].iloc[40]


def test_shuffled_split_is_seeded_and_keeps_every_row():
    dataset = make_line_data(COURSE_DATA, seed=42)
    shuffled = SplitParams(train_fraction=0.8, shuffle=True)

    train, test = split_data(dataset, shuffled, seed=7)
    train_again, _ = split_data(dataset, shuffled, seed=7)

    pd.testing.assert_frame_equal(train, train_again)
    assert not train["x"].equals(dataset["x"].iloc[:40].reset_index(drop=True))
    together = np.sort(np.concatenate([train["x"], test["x"]]))
    assert np.array_equal(together, dataset["x"].to_numpy())


def test_split_refuses_to_leave_a_side_empty():
    tiny = make_line_data(DataParams(0.7, 0.3, 0.0, 0.04, 0.02, 0.0), seed=0)  # two rows

    with pytest.raises(UserError, match="train_fraction"):
        split_data(tiny, SplitParams(train_fraction=0.2, shuffle=False), seed=0)


def test_parquet_round_trip_keeps_float32_bits(tmp_path):
    dataset = make_line_data(DataParams(0.7, 0.3, -1.0, 1.0, 1e-3, 0.1), seed=3)

    write_table(tmp_path / "table.parquet", dataset)
    loaded = read_table(tmp_path / "table.parquet")

    assert loaded["y"].dtype == np.float32
    assert np.array_equal(loaded.to_numpy(), dataset.to_numpy())


def test_writing_the_same_table_twice_gives_the_same_bytes(tmp_path):
    dataset = make_line_data(COURSE_DATA, seed=42)

    write_table(tmp_path / "a.parquet", dataset)
    write_table(tmp_path / "b.parquet", dataset)

    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"", "not a readable Parquet file"),
        (b"PAR1 truncated", "not a readable Parquet file"),
    ],
)
def test_unreadable_data_files_are_named(tmp_path, content, message):
    path = tmp_path / "train.parquet"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(UserError, match=message) as error:
        read_table(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, np.nan]}), "NaN or infinite value at row 1"),
        (pd.DataFrame({"x": [0.0, np.inf], "y": [1.0, 2.0]}), "NaN or infinite"),
        (pd.DataFrame({"x": ["a", "b"], "y": [1.0, 2.0]}), "column x is not numeric"),
        (pd.DataFrame({"x": [0.0, 1.0]}), "missing column"),
        (pd.DataFrame({"x": pd.Series([], dtype="float32"), "y": []}), "has no rows"),
    ],
)
def test_bad_data_values_are_named(tmp_path, table, message):
    path = tmp_path / "dataset.parquet"
    table.to_parquet(path)

    with pytest.raises(UserError, match=message):
        read_table(path, columns=("x", "y"))
