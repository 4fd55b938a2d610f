"""Stage 3, train: build the model, run the course's train/test loop, save the state_dict."""

import platform
import sys
from dataclasses import asdict

from pytorch_workflow import distributed
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.files import restored_on_failure
from pytorch_workflow.params import Params, load_params
from pytorch_workflow.paths import Paths, load_paths

# Checked before torch is imported (about two seconds), so a typo fails at once.
PARAMS = exit_on_user_error(load_params)()
# With more processes this one only starts torchrun and waits: it stops before importing torch
# (and defining `train`), which every training process imports again.
launching = distributed.wanted(PARAMS.train.processes) and not distributed.in_torchrun()


@exit_on_user_error
def main() -> None:
    paths = load_paths()
    # The losses are written as training goes: a run that fails puts the last ones back.
    with restored_on_failure(paths.loss_table, paths.train_metrics):
        if launching:
            distributed.run_under_torchrun(PARAMS.train.processes, "stages.train")
        else:
            train(PARAMS, paths)


if __name__ == "__main__" and launching:
    sys.exit(main())

import torch

from pytorch_workflow import engine
from pytorch_workflow.data_setup import ParquetTable, read_features
from pytorch_workflow.dataloaders import create_dataloaders
from pytorch_workflow.device import describe, resolve_device, use_repeatable_kernels
from pytorch_workflow.files import atomic_write_json, atomic_write_text
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.utils import save_model


def train(params: Params, paths: Paths) -> None:
    device = resolve_device(params.device, distributed.local_rank())
    use_repeatable_kernels(device)
    processes = distributed.start_process_group(device) if distributed.in_torchrun() else 1
    # The first process on each machine logs and writes: every process holds the same model.
    writer = distributed.local_rank() == 0
    log = print if writer else (lambda line: None)
    log(f"Using device: {describe(device)}" + (f", {processes} processes" if processes > 1 else ""))

    features = read_features(paths.features)
    train_dataloader, test_dataloader = create_dataloaders(
        ParquetTable(paths.train, features.columns),
        ParquetTable(paths.test, features.columns),
        features,
        device,
        params.train.batch_size,
        shuffle_seed=params.seed if params.split.shuffle else None,
    )

    model = build_model(params.model.name, params.seed, len(features.names), params.model.options)
    model = model.to(device)
    log(f"Initial parameters: {shown_parameters(model)}")
    # Written as training goes, so `dvc exp show` shows a running experiment's progress.
    progress = (lambda history: write_losses(paths, history, live=True)) if writer else None
    history = engine.train(
        model, train_dataloader, test_dataloader, params.train, log, on_log=progress
    )
    log(f"Learned parameters: {shown_parameters(model)}")

    if writer:
        save_model(model, paths.model)
        write_losses(paths, history)
        atomic_write_json(
            paths.train_metrics,
            {
                "train_loss": history[-1].train_loss,
                **learned_parameters(model),
                "device": str(device),
                "processes": processes,
                # The machine kind: `make lock-check` names it when results differ.
                "machine": platform.machine(),
            },
        )
    distributed.end_process_group()


def write_losses(paths: Paths, history: list[engine.EpochLosses], live: bool = False) -> None:
    """Every epoch's losses to plots/loss.csv; while training, the latest to train.json too."""
    lines = [f"{h.epoch},{h.train_loss!r},{h.test_loss!r}" for h in history]
    atomic_write_text(paths.loss_table, "epoch,train_loss,test_loss\n" + "\n".join(lines) + "\n")
    if live:
        atomic_write_json(paths.train_metrics, asdict(history[-1]))


# A model with more values than this keeps them in model.pt only, not in `dvc exp show`.
MAX_RECORDED_VALUES = 16


def learned_parameters(model: torch.nn.Module) -> dict[str, dict[str, float]]:
    """{"learned": each value by name} for a small model, as the course prints its state_dict;
    nothing for a larger one."""
    values = parameter_values(model)
    return {"learned": values} if len(values) <= MAX_RECORDED_VALUES else {}


def shown_parameters(model: torch.nn.Module) -> dict[str, float] | str:
    """The values for the log; a count for a model too large to print."""
    values = parameter_values(model)
    if len(values) <= MAX_RECORDED_VALUES:
        return values
    return f"{len(values):,} values in {len(model.state_dict())} tensors"


def parameter_values(model: torch.nn.Module) -> dict[str, float]:
    """Each parameter's values by name (`weights`, or `weights.0`, `weights.1`, ... for k > 1)."""
    values = {}
    for name, tensor in model.named_parameters():
        flat = tensor.detach().cpu().reshape(-1).tolist()
        names = [name] if len(flat) == 1 else [f"{name}.{i}" for i in range(len(flat))]
        values.update(zip(names, flat, strict=True))
    return values


if __name__ == "__main__":
    main()
