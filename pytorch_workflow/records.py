"""What the train stage records: live metrics through DVCLive, the loss table, train.json.

While training runs, DVCLive (DVC's own logger) writes the latest losses (and a scheduler's
learning rate) at every log line, so
`dvc exp show`, DVC's VS Code extension and Studio show a running experiment's progress. When
training ends, `plots/loss.csv` gets every epoch's losses at full precision and
`metrics/train.json` the final loss, where it ran and, for a small model, its learned values.
"""

import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from pytorch_workflow.engine import EpochResult
from pytorch_workflow.files import atomic_write_json, atomic_write_text

# A model with more values than this keeps them in model.pt only, not in `dvc exp show`.
MAX_RECORDED_VALUES = 16


@contextmanager
def live_metrics(folder: Path) -> Iterator[Callable[[list[EpochResult]], None]]:
    """A DVCLive logger of the latest epoch's losses (and the learning rate a scheduler set),
    with the epoch as its step."""
    from dvclive import Live  # about a second of imports: only the process that writes

    with Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None) as live:

        def log(history: list[EpochResult]) -> None:
            latest = history[-1]
            live.step = latest.epoch
            for name, value in _recorded(latest).items():
                live.log_metric(name, value)
            if latest.lr is not None:
                live.log_metric("lr", latest.lr)
            live.next_step()

        yield log


def _recorded(result: EpochResult) -> dict[str, float]:
    """An epoch's losses, and a classifier's accuracies."""
    values = {"train_loss": result.train_loss, "test_loss": result.test_loss}
    if result.train_accuracy is not None and result.test_accuracy is not None:
        values |= {"train_accuracy": result.train_accuracy, "test_accuracy": result.test_accuracy}
    return values


def write_losses(path: Path, history: list[EpochResult]) -> None:
    """Every epoch's losses (and accuracies), as `dvc plots` and the loss curves read them."""
    columns = ["epoch", *_recorded(history[0])]
    lines = [",".join(map(repr, [h.epoch, *_recorded(h).values()])) for h in history]
    atomic_write_text(path, ",".join(columns) + "\n" + "\n".join(lines) + "\n")


def write_train_metrics(
    path: Path, history: list[EpochResult], model: torch.nn.Module, device: str, processes: int
) -> None:
    values = parameter_values(model)
    atomic_write_json(
        path,
        {
            **{
                name: value
                for name, value in _recorded(history[-1]).items()
                if name.startswith("train_")
            },
            **({"learned": values} if len(values) <= MAX_RECORDED_VALUES else {}),
            "device": device,
            "processes": processes,
            # The machine kind: `make lock-check` names it when results differ.
            "machine": platform.machine(),
        },
    )


def shown_parameters(model: torch.nn.Module) -> dict[str, float] | str:
    """The values for the log, as the course prints its state_dict; a count for a larger model."""
    values = parameter_values(model)
    if len(values) <= MAX_RECORDED_VALUES:
        return values
    return f"{len(values):,} values in {len(list(model.parameters()))} tensors"


def parameter_values(model: torch.nn.Module) -> dict[str, float]:
    """Each parameter's values by name (`weights`, or `weights.0`, `weights.1`, ... for k > 1)."""
    values = {}
    for name, tensor in model.named_parameters():
        flat = tensor.detach().cpu().reshape(-1).tolist()
        names = [name] if len(flat) == 1 else [f"{name}.{i}" for i in range(len(flat))]
        values.update(zip(names, flat, strict=True))
    return values
