"""The one-line errors a stage prints when the machine refuses a write or it is interrupted."""

import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from pytorch_workflow.errors import UserError, exit_on_user_error, os_refusal
from pytorch_workflow.files import atomic_path, check_writable
from pytorch_workflow.tables import arrow_table, write_table


def _disk_full(writer, table, row_group_size=None):
    """ParquetWriter.write_table as pyarrow fails on a full disk: errno, its words, no file."""
    raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")


def test_a_full_disk_under_pyarrow_names_the_output_and_the_oss_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _disk_full)

    with pytest.raises(OSError) as error:
        write_table(
            tmp_path / "data/dataset.parquet",
            [arrow_table({"x": np.zeros(3, dtype=np.float32)})],
            10,
        )

    assert os_refusal(error.value) == "data/dataset.parquet: No space left on device"
    assert list((tmp_path / "data").iterdir()) == []


def test_an_output_where_a_file_blocks_its_folder_is_refused_before_any_work(tmp_path):
    (tmp_path / "models").write_text("not a folder")

    with pytest.raises(OSError) as error:
        check_writable(tmp_path / "models/model.pt")

    assert os_refusal(error.value).endswith("models: File exists")


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (None, "error: interrupted; the outputs are as they were\n"),
        (
            "train",
            "error: interrupted; the stage wrote nothing, and DVC had removed its outputs "
            "before it ran: `dvc repro` makes them again\n",
        ),
    ],
    ids=["by hand", "under dvc repro"],
)
def test_an_interrupted_stage_says_what_is_left(monkeypatch, capsys, stage, message):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    if stage is None:
        monkeypatch.delenv("DVC_STAGE", raising=False)
    else:
        monkeypatch.setenv("DVC_STAGE", stage)  # as DVC sets it for a stage's command

    @exit_on_user_error
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stopped:
        interrupted()

    assert stopped.value.code == 130
    assert capsys.readouterr().err == message


def test_an_error_is_one_write_so_that_processes_sharing_a_pipe_keep_their_lines(monkeypatch):
    writes = []

    class Stderr:
        def write(self, text):
            writes.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Stderr())

    @exit_on_user_error
    def stage():
        raise UserError("training diverged")

    with pytest.raises(SystemExit):
        stage()

    assert writes == ["error: training diverged\n"]  # print would write the newline apart


def test_an_error_that_is_no_failed_write_keeps_its_words(tmp_path):
    with pytest.raises(OSError) as error, atomic_path(tmp_path / "model.pt2"):
        raise OSError("could not get source code")

    assert str(error.value) == "could not get source code"


def test_a_file_in_exports_temporary_folder_is_named_as_it_will_be():
    full = OSError(28, "No space left on device", "models/.export.k2j8x0aq.tmp/model.pt2")

    assert os_refusal(full) == "models/export/model.pt2: No space left on device"


def test_checking_an_output_creates_no_folder(tmp_path):
    check_writable(tmp_path / "plots/predictions.png")

    assert list(tmp_path.iterdir()) == []
