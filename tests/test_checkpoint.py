import pickle
import zipfile

import pytest
import torch

from pytorch_workflow.checkpoint import load_model, save_model, state_dict_bytes
from pytorch_workflow.errors import UserError
from pytorch_workflow.model_builder import build_model


def test_state_dict_round_trip_restores_every_tensor(tmp_path):
    model = build_model("linear_regression", seed=42)
    save_model(model, tmp_path / "model.pt")

    loaded = load_model(build_model("linear_regression", seed=0), tmp_path / "model.pt")

    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_saving_the_same_weights_twice_gives_identical_bytes(tmp_path):
    model = build_model("linear_regression_v2", seed=42)

    save_model(model, tmp_path / "first.pt")
    save_model(model, tmp_path / "second.pt")

    assert (tmp_path / "first.pt").read_bytes() == (tmp_path / "second.pt").read_bytes()


def test_saved_file_is_a_valid_zip_that_plain_torch_load_reads(tmp_path):
    model = build_model("linear_regression", seed=42)
    save_model(model, tmp_path / "model.pt")

    with zipfile.ZipFile(tmp_path / "model.pt") as archive:
        assert archive.testzip() is None  # every CRC checks out
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(loaded["weights"], model.weights.detach())


def test_different_weights_give_different_serialization_ids():
    first = state_dict_bytes(build_model("linear_regression", seed=1).state_dict())
    second = state_dict_bytes(build_model("linear_regression", seed=2).state_dict())

    def serialization_id(data: bytes) -> bytes:
        import io

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read("archive/.data/serialization_id")

    assert serialization_id(first) != serialization_id(second)


class _WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(1), "bias": _WritesMarker(marker)}, path)
    assert not marker.exists()

    with pytest.raises(UserError, match="refused to load"):
        load_model(build_model("linear_regression"), path)
    assert not marker.exists()


def test_a_plain_pickle_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pt"
    with open(path, "wb") as file:
        pickle.dump(_WritesMarker(marker), file)

    with pytest.raises(UserError):
        load_model(build_model("linear_regression"), path)
    assert not marker.exists()


def test_a_truncated_model_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    save_model(build_model("linear_regression", seed=42), path)
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(UserError, match="not a readable model file"):
        load_model(build_model("linear_regression"), path)


def test_wrong_keys_are_named(tmp_path):
    path = tmp_path / "model.pt"
    save_model(build_model("linear_regression_v2", seed=42), path)

    with pytest.raises(UserError, match=r"linear_layer\.weight.*do not match.*weights"):
        load_model(build_model("linear_regression"), path)


def test_wrong_shapes_are_named(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3), "bias": torch.zeros(1)}, path)

    with pytest.raises(UserError, match=r"weights \(3,\) != \(1,\)"):
        load_model(build_model("linear_regression"), path)
