"""The course's training loop: `train_step`, `test_step` and `train`, over chunks and processes.

With the course's 50 rows there is one chunk and one process, and each epoch is the course's:
forward pass, loss, `zero_grad`, `backward`, `step`, then the test loss under
`torch.inference_mode()`. The loss is the course's `torch.nn` loss for each row, averaged by
`portable.ordered_mean`, and the parameters' gradients are summed over the rows through
`portable.row_parameters`: torch's own bits on x86-64, and the same bits on every other CPU.

A larger split arrives in chunks (Parquet row groups). A full-batch step then sums the loss's
gradient over every chunk before the one optimizer step: the same step as on the whole split.
With several processes (`train.processes`, under torchrun) each process computes the gradients
of its own chunks, and every process adds all the chunks' gradients in chunk order, so the step
has the same bits whatever the number of processes.
"""

import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pytorch_workflow.data_setup import Features, ParquetTable
from pytorch_workflow.errors import UserError
from pytorch_workflow.optimizers import LBFGS, OPTIMIZER_CLASSES, Optimizer
from pytorch_workflow.params import LOSSES, OPTIMIZERS, TrainParams
from pytorch_workflow.portable import (
    ordered_mean,
    ordered_sum,
    per_row_loss,
    row_parameters,
    running_sum,
)

# How much of a split a process keeps decoded, as tensors, between epochs (MiB): reading chunks
# again each epoch costs about a third of the train stage's time. What does not fit is read
# from its Parquet file again each epoch, so memory stays bounded whatever the number of rows.
# Results do not depend on it: an environment variable for machines short of memory.
CACHE_ENV = "PYTORCH_WORKFLOW_CACHE_MB"
DEFAULT_CACHE_MB = 256


@dataclass(frozen=True)
class EpochLosses:
    epoch: int
    train_loss: float
    test_loss: float


class SplitTensors:
    """A split's standardised features (n, k) and targets (n, 1) as float32 tensors, by chunk.

    Chunk `i` belongs to process `i % world_size`; `mine()` yields this process's chunks.
    """

    def __init__(
        self,
        table: ParquetTable,
        features: Features,
        device: torch.device,
        budget: "CacheBudget | None" = None,
    ) -> None:
        self.table = table
        self.features = features
        self.device = device
        self.rows = table.rows
        self.rank, self.world_size = process_rank()
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._budget = budget or CacheBudget()

    @property
    def num_chunks(self) -> int:
        return self.table.num_chunks

    def chunk(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index in self._cache:
            return self._cache[index]
        columns = self.table.chunk(index)
        X = np.column_stack([columns[name] for name in self.features.names])
        X = np.ascontiguousarray(self.features.scale(X), dtype=np.float32)
        y = np.array(columns[self.features.target], dtype=np.float32)  # writable, for torch
        tensors = (
            torch.from_numpy(X).to(self.device),
            torch.from_numpy(y).unsqueeze(dim=1).to(self.device),
        )
        if self._budget.take(sum(t.numel() * t.element_size() for t in tensors)):
            self._cache[index] = tensors
        return tensors

    def mine(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        for index in range(self.rank, self.num_chunks, self.world_size):
            yield (index, *self.chunk(index))


class CacheBudget:
    """The bytes of decoded chunks that the splits of one process keep between epochs, together:
    $PYTORCH_WORKFLOW_CACHE_MB MiB, or 256."""

    def __init__(self) -> None:
        text = os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_MB))
        try:
            megabytes = float(text)
        except ValueError:
            megabytes = math.nan
        if not math.isfinite(megabytes):
            raise UserError(f"{CACHE_ENV}={text!r}: expected a number of MiB")
        self.left = max(0, int(megabytes * 1024 * 1024))

    def take(self, size: int) -> bool:
        """Whether `size` more bytes fit; if they do, they are taken."""
        if size > self.left:
            return False
        self.left -= size
        return True


def process_rank() -> tuple[int, int]:
    """(rank, world size) under torchrun; (0, 1) in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_loss_fn(name: str) -> nn.Module:
    """The `torch.nn` loss named by `train.loss` (params.LOSSES), for each row."""
    return per_row_loss(LOSSES[name].module)


def forward_pass(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """model(X); the course's model gets its parameters once per row, so that their gradients
    are summed over the rows by `portable.ordered_sum` rather than by autograd's own sum."""
    if getattr(model, "takes_row_parameters", False):
        return torch.func.functional_call(model, row_parameters(model, X.shape[0]), (X,))
    return model(X)


def make_optimizer(model: nn.Module, params: TrainParams) -> Optimizer:
    """The optimizer named by `train.optimizer` (params.OPTIMIZERS), from `optimizers`."""
    optimizer = OPTIMIZER_CLASSES[OPTIMIZERS[params.optimizer]]
    if params.optimizer == "sgd":
        return optimizer(model.parameters(), lr=params.lr, momentum=params.momentum)
    return optimizer(model.parameters(), lr=params.lr)


def _ordered_sum(parts: torch.Tensor) -> torch.Tensor:
    """parts[0] + parts[1] + ... in that order: the same bits for any split of the work."""
    return running_sum(parts[1:], parts[0])


def _all_processes_sum(buffer: torch.Tensor) -> torch.Tensor:
    """Every process's rows of `buffer` (zeros elsewhere) on every process."""
    if process_rank()[1] > 1:
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer


def l2_penalty(model: nn.Module, l2: float, rows: int) -> torch.Tensor:
    """0.5 * l2 * |weights|^2 for the sum of the row losses (scikit-learn's C = 1 / l2), as a
    share of their mean: divided by the rows. Biases are not penalised."""
    weights = [p for name, p in model.named_parameters() if name.split(".")[-1] != "bias"]
    squares = torch.cat([(weight * weight).reshape(-1, 1) for weight in weights])
    return ordered_sum(squares)[0] * (0.5 * l2 / rows)


def full_batch_loss_and_gradients(
    model: nn.Module, data: SplitTensors, loss_fn: nn.Module, l2: float = 0.0
) -> torch.Tensor:
    """The loss on the whole split; its gradient is left in each parameter's `.grad`.

    Each chunk's mean loss is weighted by its share of the rows (1.0 for a single chunk, an
    exact multiplication) and differentiated on its own; the chunks' gradients are then added
    in chunk order.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    rows = torch.zeros(data.num_chunks, sum(p.numel() for p in parameters) + 1, device=data.device)
    model.train()
    for index, X, y in data.mine():
        loss = ordered_mean(loss_fn(forward_pass(model, X), y)) * (X.shape[0] / data.rows)
        if l2 and index == 0:  # the penalty once, with the first chunk
            loss = loss + l2_penalty(model, l2, data.rows)
        rows[index] = _gradient_and_loss(parameters, loss)
    return _sum_over_processes(parameters, rows)


def _gradient_and_loss(parameters: list[nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """The loss's gradient for each parameter, then the loss, in one row."""
    for parameter in parameters:
        parameter.grad = None
    loss.backward()
    return torch.cat([*(p.grad.reshape(-1) for p in parameters), loss.detach().reshape(1)])


def _sum_over_processes(parameters: list[nn.Parameter], rows: torch.Tensor) -> torch.Tensor:
    """Rows of `_gradient_and_loss`, each filled by one process (zeros elsewhere), added in
    order on every process, in one collective: the gradient goes to `.grad`, the loss returns."""
    total = _ordered_sum(_all_processes_sum(rows))
    sizes = [p.numel() for p in parameters]
    for parameter, part in zip(parameters, total[:-1].split(sizes), strict=True):
        parameter.grad = part.reshape(parameter.shape).clone()
    return total[-1]


def train_step(
    model: nn.Module,
    data: SplitTensors,
    loss_fn: nn.Module,
    optimizer: Optimizer,
    batch_size: int | None = None,
    order: np.random.Generator | None = None,
    l2: float = 0.0,
) -> float:
    """One epoch of training; returns the train loss over the split, before the step(s).

    Without a batch size this is the course's single full-batch step. With one, each chunk's
    rows are cut into mini-batches, in a seeded random order when `order` is given.
    """
    if batch_size is None or batch_size >= data.rows:
        if isinstance(optimizer, LBFGS):
            losses: list[torch.Tensor] = []

            def closure() -> torch.Tensor:
                loss = full_batch_loss_and_gradients(model, data, loss_fn, l2)
                losses.append(loss)
                return loss

            optimizer.step(closure)
            return losses[0].item()
        loss = full_batch_loss_and_gradients(model, data, loss_fn, l2)
        optimizer.step()
        return loss.item()
    return _mini_batch_epoch(model, data, loss_fn, optimizer, batch_size, order, l2)


def _mini_batch_epoch(
    model: nn.Module,
    data: SplitTensors,
    loss_fn: nn.Module,
    optimizer: Optimizer,
    batch_size: int,
    order: np.random.Generator | None,
    l2: float,
) -> float:
    """Mini-batches cut from each chunk; with several processes each takes a slice of each."""
    chunks = order.permutation(data.num_chunks) if order is not None else range(data.num_chunks)
    total = 0.0
    for index in chunks:
        X, y = data.chunk(int(index))
        if order is not None:
            rows = torch.from_numpy(order.permutation(X.shape[0])).to(X.device)
            X, y = X[rows], y[rows]
        for start in range(0, X.shape[0], batch_size):
            X_batch, y_batch = X[start : start + batch_size], y[start : start + batch_size]
            penalty = (lambda: l2_penalty(model, l2, data.rows)) if l2 else None
            if data.world_size == 1:
                loss = _course_step(model, X_batch, y_batch, loss_fn, optimizer, penalty)
            else:
                loss = _sliced_step(model, X_batch, y_batch, loss_fn, optimizer, data, penalty)
            total += loss * X_batch.shape[0]
    return total / data.rows


def _course_step(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: Optimizer,
    penalty: Callable[[], torch.Tensor] | None = None,
) -> float:
    """The course's step on one batch: forward pass, loss, zero_grad, backward, step."""
    model.train()
    y_pred = forward_pass(model, X)
    loss = ordered_mean(loss_fn(y_pred, y))
    if penalty is not None:
        loss = loss + penalty()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _sliced_step(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: Optimizer,
    data: SplitTensors,
    penalty: Callable[[], torch.Tensor] | None = None,
) -> float:
    """One mini-batch step shared by the processes: each differentiates its slice of rows."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    rows = torch.zeros(data.world_size, sum(p.numel() for p in parameters) + 1, device=X.device)
    bounds = np.linspace(0, X.shape[0], data.world_size + 1).astype(int)
    first, last = bounds[data.rank], bounds[data.rank + 1]
    model.train()
    if last > first:
        predicted = forward_pass(model, X[first:last])
        loss = ordered_mean(loss_fn(predicted, y[first:last])) * ((last - first) / X.shape[0])
        if penalty is not None and data.rank == 0:
            loss = loss + penalty()
        rows[data.rank] = _gradient_and_loss(parameters, loss)
    loss = _sum_over_processes(parameters, rows)
    optimizer.step()
    return loss.item()


def test_step(model: nn.Module, data: SplitTensors, loss_fn: nn.Module) -> float:
    """The loss on held-out data under `torch.inference_mode()`, chunk by chunk."""
    losses = torch.zeros(data.num_chunks, device=data.device)
    model.eval()
    with torch.inference_mode():
        for index, X, y in data.mine():
            test_pred = model(X)
            losses[index] = ordered_mean(loss_fn(test_pred, y)) * (X.shape[0] / data.rows)
    return _ordered_sum(_all_processes_sum(losses.clone())).item()


def train(
    model: nn.Module,
    train_data: SplitTensors,
    test_data: SplitTensors,
    params: TrainParams,
    log: Callable[[str], None] = print,
    shuffle_seed: int | None = None,
    on_log: Callable[[list[EpochLosses]], None] | None = None,
) -> list[EpochLosses]:
    """Train for `params.epochs`; log the course's line every `params.log_every` epochs.

    `shuffle_seed` shuffles the mini-batches (when `params.batch_size` is set) reproducibly;
    `on_log` gets the losses so far whenever a line is logged.
    """
    loss_fn = make_loss_fn(params.loss)
    optimizer = make_optimizer(model, params)
    label = LOSSES[params.loss].label
    order = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    history: list[EpochLosses] = []
    with _Progress(params.epochs, train_data.rows, train_data.rank) as bar:
        for epoch in range(params.epochs):
            train_loss = train_step(
                model, train_data, loss_fn, optimizer, params.batch_size, order, params.l2
            )
            test_loss = test_step(model, test_data, loss_fn)
            if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
                raise UserError(
                    f"training diverged: the {label} loss became {train_loss:.3g} (train), "
                    f"{test_loss:.3g} (test) at epoch {epoch} with train.lr={params.lr:g}; "
                    "try a smaller train.lr"
                )
            history.append(EpochLosses(epoch, train_loss, test_loss))
            bar.update()
            if epoch % params.log_every == 0:
                bar.write(
                    f"Epoch: {epoch} | {label} Train Loss: {train_loss} "
                    f"| {label} Test Loss: {test_loss}",
                    log,
                )
                if on_log is not None:
                    on_log(history)
    return history


class _Progress:
    """A progress bar (epochs, and rows per second) on a terminal; nothing in logs and CI."""

    def __init__(self, epochs: int, rows: int, rank: int) -> None:
        self._bar = None
        if rank == 0 and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=epochs, desc="train", unit="epoch", leave=False)
            self._rows = rows

    def __enter__(self) -> "_Progress":
        return self

    def update(self) -> None:
        if self._bar is not None:
            self._bar.update()
            rate = self._bar.format_dict.get("rate")
            if rate:
                self._bar.set_postfix_str(f"{rate * self._rows:,.0f} rows/s", refresh=False)

    def write(self, line: str, log: Callable[[str], None]) -> None:
        # Through the bar's own writer, log lines do not tear it.
        if self._bar is not None:
            self._bar.write(line)
        else:
            log(line)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
