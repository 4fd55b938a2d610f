"""The course's `create_dataloaders`: a split's rows as a `torch.utils.data.DataLoader`.

A split is read a chunk at a time: a row group of the dataset, its rows on this side.
`SplitDataset` streams them: a chunk is decoded into tensors when it is needed and kept between
epochs while the memory budget allows (`$PYTORCH_WORKFLOW_CACHE_MB`, 256 by default), so a split
larger than memory still trains in bounded memory. Results do not depend on the budget.

Each item is a `Batch`: this process's rows of one step. With the course's whole-split step
(`train.batch_size: null`) the step is the whole split, and each chunk is one piece of it; with
mini-batches each step is one batch of `batch_size` rows, in a seeded random order when
shuffled. Under torchrun every process takes its slice of every piece, so every process steps
equally often whatever the number of rows.
"""

import math
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from pytorch_workflow.data_setup import Features, SplitTable
from pytorch_workflow.distributed import process_rank
from pytorch_workflow.errors import UserError

CACHE_ENV = "PYTORCH_WORKFLOW_CACHE_MB"
DEFAULT_CACHE_MB = 256


class Batch(NamedTuple):
    X: torch.Tensor  # standardised features (n, k), float32
    # targets: (n, 1) float32, or a multi-class target's class indices (n,) int64
    y: torch.Tensor
    # What this process's mean loss on these rows weighs in its step's loss: 1.0 for the course's
    # whole split on one process. Under DistributedDataParallel, which averages the processes'
    # gradients, the shares of all processes add up to the number of processes.
    share: float
    step_rows: int  # the rows of the whole step, over every process


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
        # More than a tebibyte is more than any machine here holds: no limit, in effect.
        self.left = max(0, int(min(megabytes, 2.0**20) * 1024 * 1024))

    def take(self, size: int) -> bool:
        """Whether `size` more bytes fit; if they do, they are taken."""
        if size > self.left:
            return False
        self.left -= size
        return True


class SplitDataset(IterableDataset):
    """A split's steps as `Batch`es for this process (see the module's docstring)."""

    def __init__(
        self,
        table: SplitTable,
        features: Features,
        device: torch.device,
        budget: CacheBudget,
        batch_size: int | None = None,
        shuffle_seed: int | None = None,
    ) -> None:
        self.table = table
        self.features = features
        self.device = device
        self.rows = table.rows
        self.full_batch = batch_size is None or batch_size >= table.rows
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.epoch = 0
        self.rank, self.world_size = process_rank()
        self._budget = budget
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def set_epoch(self, epoch: int) -> None:
        """As `DistributedSampler.set_epoch`: each epoch shuffles in its own seeded order."""
        self.epoch = epoch

    def chunk(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row group `index` as (X, y) tensors on the device, kept while the budget allows."""
        if index in self._cache:
            return self._cache[index]
        columns = self.table.chunk(index)
        X = self.features.matrix(columns)
        labels = columns[self.features.target]
        if self.features.classes:
            y = torch.from_numpy(self.features.class_indices(labels))
        else:
            y = torch.from_numpy(np.array(labels, dtype=np.float32)).unsqueeze(dim=1)  # writable
        tensors = (torch.from_numpy(X).to(self.device), y.to(self.device))
        if self._budget.take(sum(t.numel() * t.element_size() for t in tensors)):
            self._cache[index] = tensors
        return tensors

    def __len__(self) -> int:
        """The batches of an epoch: a piece per chunk of the whole-split step, or the
        mini-batches."""
        if self.full_batch:
            return self.table.num_chunks
        return math.ceil(self.rows / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if self.full_batch:
            for index in range(self.table.num_chunks):
                yield self._slice(*self.chunk(index), step_rows=self.rows)
            return
        yield from self._mini_batches()

    def _mini_batches(self) -> Iterator[Batch]:
        """Batches of `batch_size` rows (the last may be smaller), chunk after chunk; shuffled,
        the chunks come in a random order and the rows of each chunk too."""
        generator = None
        chunks: list[int] = list(range(self.table.num_chunks))
        if self.shuffle_seed is not None:
            generator = torch.Generator().manual_seed(self.shuffle_seed + self.epoch)
            chunks = torch.randperm(len(chunks), generator=generator).tolist()
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        pending_rows = 0
        for index in chunks:
            X, y = self.chunk(index)
            if generator is not None:
                order = torch.randperm(X.shape[0], generator=generator).to(X.device)
                X, y = X[order], y[order]
            start = 0
            while start < X.shape[0]:
                take = min(self.batch_size - pending_rows, X.shape[0] - start)
                pending.append((X[start : start + take], y[start : start + take]))
                pending_rows += take
                start += take
                if pending_rows == self.batch_size:
                    yield self._joined(pending)
                    pending, pending_rows = [], 0
        if pending:
            yield self._joined(pending)

    def _joined(self, pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
        if len(pieces) == 1:
            X, y = pieces[0]
        else:
            X, y = torch.cat([X for X, _ in pieces]), torch.cat([y for _, y in pieces])
        return self._slice(X, y, step_rows=X.shape[0])

    def _slice(self, X: torch.Tensor, y: torch.Tensor, step_rows: int) -> Batch:
        """This process's rows of a piece, and their share of the step's loss."""
        first = X.shape[0] * self.rank // self.world_size
        last = X.shape[0] * (self.rank + 1) // self.world_size
        if last == first:
            # Fewer rows than processes: this one still steps, on a row that weighs nothing,
            # so that every process runs as many backward passes (DistributedDataParallel).
            return Batch(X[:1], y[:1], 0.0, step_rows)
        share = (last - first) * self.world_size / step_rows
        return Batch(X[first:last], y[first:last], share, step_rows)


def create_dataloaders(
    train: SplitTable,
    test: SplitTable,
    features: Features,
    device: torch.device,
    batch_size: int | None = None,
    shuffle_seed: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """The train and test DataLoaders; both keep what fits of their chunks in one budget.

    The dataset makes the batches itself (`batch_size=None` here turns off the DataLoader's
    own batching), because it reads them chunk by chunk from disk.
    """
    budget = CacheBudget()
    train_data = SplitDataset(train, features, device, budget, batch_size, shuffle_seed)
    test_data = SplitDataset(test, features, device, budget)
    return DataLoader(train_data, batch_size=None), DataLoader(test_data, batch_size=None)
