"""The course's training loop: a train step and a test step per epoch, full batch."""

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pytorch_workflow.errors import UserError
from pytorch_workflow.params import TrainParams

LOSS_LABELS = {"l1": "MAE", "mse": "MSE", "huber": "Huber", "bce": "BCE"}


@dataclass(frozen=True)
class EpochLosses:
    epoch: int
    train_loss: float
    test_loss: float


def make_loss_fn(name: str) -> nn.Module:
    losses: dict[str, Callable[[], nn.Module]] = {
        "l1": nn.L1Loss,
        "mse": nn.MSELoss,
        "huber": nn.HuberLoss,
        # The model outputs a logit; this applies the sigmoid inside, stably.
        "bce": nn.BCEWithLogitsLoss,
    }
    return losses[name]()


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    if params.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum)
    return torch.optim.Adam(model.parameters(), lr=params.lr)


def train_step(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> torch.Tensor:
    """Forward pass, loss, zero_grad, backward, step; returns the loss before the step."""
    model.train()
    y_pred = model(X)
    loss = loss_fn(y_pred, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def test_step(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module
) -> torch.Tensor:
    """The loss on held-out data, with gradients off."""
    model.eval()
    with torch.inference_mode():
        test_pred = model(X)
        return loss_fn(test_pred, y)


def train_epoch(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int | None,
    shuffle: torch.Generator | None,
) -> float:
    """One pass over the training data; returns the mean loss over its rows.

    With no batch size (or one covering every row) this is the course's single full-batch
    step. Mini-batches are slices of the tensors, in a seeded random order if `shuffle`.
    """
    rows = X.shape[0]
    if batch_size is None or batch_size >= rows:
        return train_step(model, X, y, loss_fn, optimizer).item()
    order = torch.randperm(rows, generator=shuffle).to(X.device) if shuffle is not None else None
    total = 0.0
    for start in range(0, rows, batch_size):
        if order is None:
            X_batch, y_batch = X[start : start + batch_size], y[start : start + batch_size]
        else:
            batch = order[start : start + batch_size]
            X_batch, y_batch = X[batch], y[batch]
        loss = train_step(model, X_batch, y_batch, loss_fn, optimizer)
        total += loss.item() * X_batch.shape[0]
    return total / rows


def train(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    params: TrainParams,
    log: Callable[[str], None] = print,
    shuffle_seed: int | None = None,
) -> list[EpochLosses]:
    """Train for `params.epochs`; log the course's line every `params.log_every` epochs.

    `shuffle_seed` shuffles the mini-batches (when `params.batch_size` is set) reproducibly.
    """
    loss_fn = make_loss_fn(params.loss)
    optimizer = make_optimizer(model, params)
    label = LOSS_LABELS[params.loss]
    shuffle = None
    if shuffle_seed is not None:
        shuffle = torch.Generator().manual_seed(shuffle_seed)
    history: list[EpochLosses] = []
    epochs = _progress(range(params.epochs))
    # Through the bar's own writer, log lines do not tear the progress bar on a terminal.
    log = getattr(epochs, "write", log)
    for epoch in epochs:
        train_loss = train_epoch(model, *train_data, loss_fn, optimizer, params.batch_size, shuffle)
        test_loss = test_step(model, *test_data, loss_fn).item()
        losses = EpochLosses(epoch, train_loss, test_loss)
        if not (math.isfinite(losses.train_loss) and math.isfinite(losses.test_loss)):
            raise UserError(
                f"training diverged: the {label} loss became {losses.train_loss} (train), "
                f"{losses.test_loss} (test) at epoch {epoch} with train.lr={params.lr}; "
                "try a smaller train.lr"
            )
        history.append(losses)
        if epoch % params.log_every == 0:
            log(
                f"Epoch: {epoch} | {label} Train Loss: {losses.train_loss} "
                f"| {label} Test Loss: {losses.test_loss}"
            )
    return history


def _progress(epochs: range):
    """A progress bar on a terminal; plain iteration in logs and CI."""
    if not sys.stderr.isatty():
        return epochs
    from tqdm import tqdm

    return tqdm(epochs, desc="train", unit="epoch", leave=False)
