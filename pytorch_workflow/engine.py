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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pytorch_workflow import portable
from pytorch_workflow.data_setup import Features, ParquetTable
from pytorch_workflow.errors import UserError
from pytorch_workflow.optimizers import LBFGS, OPTIMIZER_CLASSES, Optimizer
from pytorch_workflow.params import LOSSES, OPTIMIZERS, TrainParams

if TYPE_CHECKING:
    from tqdm import tqdm

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
        self.num_chunks = table.num_chunks
        self.rank, self.world_size = process_rank()
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._budget = budget or CacheBudget()

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


def forward_pass(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """model(X); the course's model gets its parameters once per row, so that their gradients
    are summed over the rows by `portable.ordered_sum` rather than by autograd's own sum."""
    if getattr(model, "takes_row_parameters", False):
        return torch.func.functional_call(model, portable.row_parameters(model, X.shape[0]), (X,))
    return model(X)


def _sum_over_processes(rows: torch.Tensor) -> torch.Tensor:
    """rows[0] + rows[1] + ... in that order, each row filled by one process (zeros elsewhere),
    on every process: the same bits for any split of the work."""
    if process_rank()[1] > 1:
        dist.all_reduce(rows, op=dist.ReduceOp.SUM)
    return portable.running_sum(rows[1:], rows[0])


def l2_penalty(model: nn.Module, l2: float, rows: int) -> torch.Tensor:
    """0.5 * l2 * |weights|^2 for the sum of the row losses (scikit-learn's C = 1 / l2), as a
    share of their mean: divided by the rows. Biases are not penalised."""
    weights = [p for name, p in model.named_parameters() if name.split(".")[-1] != "bias"]
    squares = torch.cat([(weight * weight).reshape(-1, 1) for weight in weights])
    return portable.ordered_sum(squares)[0] * (0.5 * l2 / rows)


def _loss_and_gradients(
    model: nn.Module,
    data: SplitTensors,
    loss_fn: nn.Module,
    l2: float,
    *,
    pieces: Iterable[tuple[int, torch.Tensor, torch.Tensor]],
    pieces_in_all: int,
    batch_rows: int,
) -> torch.Tensor:
    """The mean loss on a batch of `batch_rows` rows that the processes share as `pieces_in_all`
    pieces, plus the split's L2 penalty; its gradient is left in each parameter's `.grad`.

    `pieces` are this process's `(index, X, y)`. Each piece's mean loss is weighted by its share
    of the batch (1.0 for a single piece, an exact multiplication) and differentiated on its own;
    the pieces' gradients are then added in index order on every process, in one collective.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in parameters]
    table = torch.zeros(pieces_in_all, sum(sizes) + 1, device=data.device)
    model.train()
    for index, X, y in pieces:
        loss = portable.ordered_mean(loss_fn(forward_pass(model, X), y)) * (X.shape[0] / batch_rows)
        if l2 and index == 0:  # the penalty once, with the first piece
            loss = loss + l2_penalty(model, l2, data.rows)
        for parameter in parameters:
            parameter.grad = None
        loss.backward()
        gradients = [parameter.grad.reshape(-1) for parameter in parameters]
        table[index] = torch.cat([*gradients, loss.detach().reshape(1)])
    total = _sum_over_processes(table)
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
    rows are cut into mini-batches, in a seeded random order when `order` is given; with several
    processes each differentiates its slice of each mini-batch.
    """
    if batch_size is None or batch_size >= data.rows:

        def closure() -> torch.Tensor:
            return _loss_and_gradients(
                model,
                data,
                loss_fn,
                l2,
                pieces=data.mine(),
                pieces_in_all=data.num_chunks,
                batch_rows=data.rows,
            )

        if isinstance(optimizer, LBFGS):
            return optimizer.step(closure).item()  # the loss of its first evaluation
        loss = closure()
        optimizer.step()
        return loss.item()
    chunks = order.permutation(data.num_chunks) if order is not None else range(data.num_chunks)
    total = 0.0
    for index in chunks:
        X, y = data.chunk(int(index))
        if order is not None:
            rows = torch.from_numpy(order.permutation(X.shape[0])).to(X.device)
            X, y = X[rows], y[rows]
        for start in range(0, X.shape[0], batch_size):
            X_batch, y_batch = X[start : start + batch_size], y[start : start + batch_size]
            if data.world_size == 1:  # the course's step
                model.train()
                y_pred = forward_pass(model, X_batch)
                loss = portable.ordered_mean(loss_fn(y_pred, y_batch))
                if l2:
                    loss = loss + l2_penalty(model, l2, data.rows)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            else:  # each process differentiates its slice of the mini-batch
                bounds = np.linspace(0, X_batch.shape[0], data.world_size + 1).astype(int)
                first, last = bounds[data.rank], bounds[data.rank + 1]
                mine = (
                    [(data.rank, X_batch[first:last], y_batch[first:last])] if last > first else []
                )
                loss = _loss_and_gradients(
                    model,
                    data,
                    loss_fn,
                    l2,
                    pieces=mine,
                    pieces_in_all=data.world_size,
                    batch_rows=X_batch.shape[0],
                )
                optimizer.step()
            total += loss.item() * X_batch.shape[0]
    return total / data.rows


def test_step(model: nn.Module, data: SplitTensors, loss_fn: nn.Module) -> float:
    """The loss on held-out data under `torch.inference_mode()`, chunk by chunk."""
    losses = torch.zeros(data.num_chunks, device=data.device)
    model.eval()
    with torch.inference_mode():
        for index, X, y in data.mine():
            test_pred = model(X)
            losses[index] = portable.ordered_mean(loss_fn(test_pred, y)) * (X.shape[0] / data.rows)
    return _sum_over_processes(losses.clone()).item()


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
    loss_fn = portable.per_row_loss(LOSSES[params.loss].module)
    options = {"momentum": params.momentum} if params.optimizer == "sgd" else {}
    optimizer_class = OPTIMIZER_CLASSES[OPTIMIZERS[params.optimizer]]
    optimizer = optimizer_class(model.parameters(), lr=params.lr, **options)
    label = LOSSES[params.loss].label
    order = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    history: list[EpochLosses] = []
    with _progress_bar(params.epochs, train_data.rank) as bar:
        # Through the bar's own writer, log lines do not tear the bar.
        write_line = log if bar is None else bar.write
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
            if bar is not None:
                bar.update()
                if rate := bar.format_dict.get("rate"):
                    bar.set_postfix_str(f"{rate * train_data.rows:,.0f} rows/s", refresh=False)
            if epoch % params.log_every == 0:
                write_line(
                    f"Epoch: {epoch} | {label} Train Loss: {train_loss} "
                    f"| {label} Test Loss: {test_loss}"
                )
                if on_log is not None:
                    on_log(history)
    return history


@contextmanager
def _progress_bar(epochs: int, rank: int) -> Iterator["tqdm | None"]:
    """A progress bar (epochs, and rows per second) on a terminal; none in logs and CI."""
    if rank != 0 or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=epochs, desc="train", unit="epoch", leave=False) as bar:
        yield bar
