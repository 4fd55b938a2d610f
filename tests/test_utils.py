"""save_model / load_model: byte-stable files that plain torch.load reads, and safe loads."""

import io
import pickle
import zipfile

import pytest
import torch

from pytorch_workflow.errors import UserError
from pytorch_workflow.export import program_bytes
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.utils import (
    load_model,
    portable_serialization_id,
    save_model,
    state_dict_bytes,
)


def serialization_id(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("archive/.data/serialization_id")


def test_state_dict_round_trip_restores_every_tensor(tmp_path):
    model = build_model("linear_regression", seed=42)
    save_model(model, tmp_path / "model.pt")

    loaded = load_model(build_model("linear_regression", seed=0), tmp_path / "model.pt")

    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_saving_the_same_weights_twice_gives_identical_bytes_that_plain_torch_load_reads(tmp_path):
    model = build_model("linear_regression_v2", seed=42)

    save_model(model, tmp_path / "first.pt")
    save_model(model, tmp_path / "second.pt")

    assert (tmp_path / "first.pt").read_bytes() == (tmp_path / "second.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "first.pt") as archive:
        assert archive.testzip() is None  # every CRC checks out
    loaded = torch.load(tmp_path / "first.pt", weights_only=True)
    assert torch.equal(loaded["linear_layer.weight"], model.linear_layer.weight.detach())


def test_the_serialization_id_workaround_still_applies(tmp_path):
    # pytorch/pytorch#184219: torch's own id depends on the C++ library. When torch stops
    # writing the id, this fails: the workaround (utils.portable_serialization_id) can go.
    model = build_model("linear_regression", 1)
    state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)

    ours = state_dict_bytes(state)

    assert serialization_id(ours) != serialization_id(buffer.getvalue())
    assert portable_serialization_id(ours) == ours  # computed from the rest: stable
    assert len(ours) == len(buffer.getvalue())  # only the id and its CRCs changed


def test_a_program_is_the_same_file_on_every_build_of_the_torch_release(monkeypatch):
    model = build_model("linear_regression", seed=42).eval()
    release = torch.__version__.split("+")[0]
    recorded = f'"torch_version": "{release}"'.encode()

    here = program_bytes(model, 1)
    # Another build of the same release (PyPI's CUDA build on Linux says "+cu130").
    monkeypatch.setattr(torch, "__version__", type(torch.__version__)(f"{release}+cu130"))
    elsewhere = program_bytes(model, 1)

    assert here == elsewhere
    assert torch.__version__ == f"{release}+cu130"  # put back after the save
    # torch still records its version there: without this the workaround can go.
    with zipfile.ZipFile(io.BytesIO(here)) as archive:
        assert any(recorded in archive.read(name) for name in archive.namelist())


def test_different_weights_give_different_serialization_ids():
    first = state_dict_bytes(build_model("linear_regression", seed=1).state_dict())
    second = state_dict_bytes(build_model("linear_regression", seed=2).state_dict())

    assert serialization_id(first) != serialization_id(second)


class WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("as_zip", [True, False])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, as_zip):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pt"
    payload = {"weights": torch.zeros(1), "bias": WritesMarker(marker)}
    if as_zip:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))

    with pytest.raises(UserError, match=r"refused to load|not a readable model file"):
        load_model(build_model("linear_regression"), path)
    assert not marker.exists()


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (300 * 1024 * 1024))

    with pytest.raises(UserError, match="refused: it unpacks to 314,572,800 bytes"):
        load_model(build_model("linear_regression"), path)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"weights": torch.zeros(3), "bias": torch.zeros(1)}, r"weights \(3,\) != \(1,\)"),
        (
            {"weight": torch.zeros(1), "bias": torch.zeros(1)},
            r"keys \['bias', 'weight'\] do not match",
        ),
        (
            {"weights": torch.tensor([float("nan")]), "bias": torch.zeros(1)},
            "weights holds NaN or infinite values",
        ),
        (
            {"weights": torch.zeros(1, dtype=torch.float64), "bias": torch.zeros(1)},
            "weights is torch.float64; the model's is torch.float32",
        ),
    ],
)
def test_a_state_dict_that_does_not_fit_the_model_is_named(tmp_path, state, message):
    path = tmp_path / "model.pt"
    torch.save(state, path)

    with pytest.raises(UserError, match=message):
        load_model(build_model("linear_regression"), path)


def test_a_truncated_model_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    save_model(build_model("linear_regression", seed=42), path)
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(UserError, match="not a readable model file"):
        load_model(build_model("linear_regression"), path)


def test_a_failed_block_puts_the_folders_files_back_and_removes_the_ones_it_added(tmp_path):
    from pytorch_workflow.files import restored_on_failure

    folder = tmp_path / "dvclive"
    (folder / "plots").mkdir(parents=True)
    (folder / "metrics.json").write_text("before")
    (folder / "plots" / "train_loss.tsv").write_text("step\ttrain_loss\n")

    with pytest.raises(KeyboardInterrupt), restored_on_failure(folder):
        (folder / "metrics.json").write_text("after")
        (folder / "plots" / "train_loss.tsv").unlink()
        (folder / "plots" / "train_accuracy.tsv").write_text("added")
        (folder / "report" / "images").mkdir(parents=True)
        (folder / "report" / "images" / "loss.png").write_text("added")
        raise KeyboardInterrupt

    entries = {
        str(path.relative_to(folder)): path.read_text() if path.is_file() else "folder"
        for path in folder.rglob("*")
    }
    assert entries == {
        "metrics.json": "before",
        "plots": "folder",
        "plots/train_loss.tsv": "step\ttrain_loss\n",
    }


def test_a_shells_stray_rank_settings_are_not_torchrun(monkeypatch):
    from pytorch_workflow.distributed import local_rank
    from pytorch_workflow.errors import in_torchrun

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)

    assert (in_torchrun(), local_rank()) == (False, 0)
