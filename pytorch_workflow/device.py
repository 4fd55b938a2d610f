"""Which device to run on: `device: auto` picks cuda, then mps, then cpu."""

import os

import numpy as np
import torch

from pytorch_workflow.errors import UserError

# torch splits a large sum across its CPU threads, so the thread count changes the last bits
# of every loss. One thread gives the same bits on any machine of the same CPU family, is never
# slower on this pipeline's element-wise work (measured at 10M rows on 2 cores), and lets
# experiments run side by side without oversubscribing the cores.
CPU_THREADS = 1


def resolve_device(requested: str) -> torch.device:
    """The torch device for a `device` param; an explicit device that is missing is an error.

    Also fixes torch's CPU threads at CPU_THREADS, for the same bits on every machine.
    """
    torch.set_num_threads(CPU_THREADS)
    if requested == "auto":
        if torch.cuda.is_available():
            return _cuda(0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "mps":
        if not _mps_available():
            raise UserError("device: mps was asked for but is not available on this machine")
        return torch.device("mps")
    kind, _, index_text = requested.partition(":")
    if kind == "cuda" and (index_text == "" or index_text.isdigit()):
        index = int(index_text or 0)
        if not torch.cuda.is_available():
            raise UserError(
                f"device: {requested} was asked for but CUDA is not available on this machine; "
                "use device: auto or cpu"
            )
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device: {requested} was asked for but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        return _cuda(index)
    raise UserError(f"device must be auto, cpu, cuda, cuda:N or mps, got {requested!r}")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _cuda(index: int) -> torch.device:
    # cuBLAS needs this to give the same bits on every run (torch's reproducibility notes).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device("cuda", index)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def to_device_tensors(
    X: np.ndarray, y: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features as an (n, k) float32 tensor and targets as (n, 1), on `device`."""
    features = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    targets = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).unsqueeze(dim=1)
    return features.to(device), targets.to(device)
