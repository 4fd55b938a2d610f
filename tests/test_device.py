import pytest
import torch

from pytorch_workflow.device import resolve_device
from pytorch_workflow.errors import UserError
from tests.conftest import imported


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


def test_the_stages_turn_on_torchs_deterministic_algorithms_without_its_compiler():
    code = (
        "import torch\n"
        "from pytorch_workflow.device import use_repeatable_kernels\n"
        "use_repeatable_kernels(torch.device('cpu'), 1)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert not torch.is_deterministic_algorithms_warn_only_enabled()"
    )
    assert imported(code, ("torch._dynamo",)) == []


def test_torchs_own_switch_still_imports_its_compiler():
    # When this fails, torch no longer imports its compiler for the switch (pytorch#165950):
    # `use_deterministic_algorithms` in pytorch_workflow/device.py can call it again.
    code = "import torch\ntorch.use_deterministic_algorithms(True)"
    assert imported(code, ("torch._dynamo",)) == ["torch._dynamo"]
