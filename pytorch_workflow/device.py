"""Which device a stage runs on (the `device` param), and torch's settings for repeatable bits."""

import os

import torch

from pytorch_workflow.errors import UserError
from pytorch_workflow.params import parse_device


def resolve_device(requested: str, local_rank: int = 0, setting: str = "device: ") -> torch.device:
    """The torch device for a `device` param; one that is missing is an error, never a fallback.

    `auto` picks cuda, then mps, then cpu. Under torchrun, plain `cuda` means this process's
    own GPU (`local_rank`). `setting` is how errors name the choice (`--device ` for predict).
    """
    kind, index = parse_device(requested)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"{setting}mps was asked for but is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise UserError(
            f"{setting}{requested} was asked for but CUDA is not available on this machine; "
            f"use {setting}cpu"
        )
    index = local_rank if index is None else index
    if index >= torch.cuda.device_count():
        raise UserError(
            f"{setting}{requested} was asked for but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device("cuda", index)


def use_repeatable_kernels(device: torch.device, threads: int) -> None:
    """torch's documented switches for the same bits on every run: a fixed number of CPU
    threads and deterministic algorithms (docs/reproducibility.md).

    torch splits a large sum into one piece per thread, so the thread count sets the order of
    its additions: fixed by `threads` in params.yaml rather than by the machine's cores, the
    same params give the same bits on a machine of any core count.
    """
    torch.set_num_threads(threads)
    if device.type == "cuda":
        # cuBLAS needs this set before its first call to give the same bits on every run.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    use_deterministic_algorithms()


def use_deterministic_algorithms() -> None:
    """`torch.use_deterministic_algorithms(True)` for the eager code the stages run.

    Since pytorch/pytorch#165950 that function also sets the flag of torch's compiler, and so
    imports the compiler: about a second in evaluate (train and export import it anyway, for
    `torch.optim` and `torch.export`). torch's other documented interface to the same switch,
    `set_deterministic_debug_mode("error")`, sets it for eager code alone; the stages run
    nothing through the compiler's Inductor.
    """
    torch.set_deterministic_debug_mode("error")


def describe(device: torch.device) -> str:
    """The device as the log names it: a GPU's model, the CPU's threads (`threads` in params)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return str(device)
