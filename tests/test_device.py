import pytest
import torch

from pytorch_workflow.device import resolve_device
from pytorch_workflow.errors import UserError


def test_cpu_is_always_available():
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps_then_cpu():
    device = resolve_device("auto")

    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_is_an_error_not_a_fallback(requested):
    with pytest.raises(UserError, match=f"device: {requested} .*not available"):
        resolve_device(requested)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_missing_mps_is_an_error():
    with pytest.raises(UserError, match="mps"):
        resolve_device("mps")
