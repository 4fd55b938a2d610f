"""The course's training loop: `train_step`, `test_step` and `train`.

Each epoch is the course's: forward pass, loss, `optimizer.zero_grad()`, `loss.backward()`,
`optimizer.step()`, then the test loss under `torch.inference_mode()`, with a `torch.nn` loss
and a `torch.optim` optimizer (and an optional `torch.optim.lr_scheduler`), over the batches of
a `DataLoader` (`dataloaders.create_dataloaders`).

A split larger than one chunk arrives in pieces: the whole-split step adds up their gradients
(each piece's loss weighted by its share of the rows) before the one `optimizer.step()`. Under
torchrun the model is wrapped in `DistributedDataParallel`, which averages the processes'
gradients in every backward pass.
"""

import inspect
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from pytorch_workflow.dataloaders import Batch
from pytorch_workflow.distributed import process_rank, sum_over_processes
from pytorch_workflow.errors import (
    TORCH_ERRORS,
    UserError,
    described,
    line_in_class_file,
)
from pytorch_workflow.model_builder import takes_out_features
from pytorch_workflow.params import LOSSES, TrainParams, construct, find_class, like_default

if TYPE_CHECKING:
    from tqdm import tqdm


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    test_loss: float
    train_accuracy: float | None = None  # a classifier's share of rows predicted right
    test_accuracy: float | None = None
    lr: float | None = None  # the learning rate of the epoch's step, where a scheduler sets it

    def log_line(self, label: str) -> str:
        """The course's line: chapter 01's for a regression, chapter 02's for a classifier."""
        if self.train_accuracy is None or self.test_accuracy is None:
            return (
                f"Epoch: {self.epoch} | {label} Train Loss: {self.train_loss} "
                f"| {label} Test Loss: {self.test_loss}"
            )
        return (
            f"Epoch: {self.epoch} | Loss: {self.train_loss:.5f}, "
            f"Accuracy: {self.train_accuracy * 100:.2f}% | Test Loss: {self.test_loss:.5f}, "
            f"Test Accuracy: {self.test_accuracy * 100:.2f}%"
        )


def _classes(module: object, base: type) -> dict[str, type]:
    """The public subclasses of `base` in `module`, by name: torch's optimizers, schedulers."""
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, base)
        and value is not base
        and not name.startswith("_")
    }


def make_optimizer(
    params: TrainParams, parameters: Iterator[nn.Parameter]
) -> torch.optim.Optimizer:
    """The `torch.optim` class that `train.optimizer` names, with `train.optimizer_options`."""
    cls = find_class(
        "train.optimizer",
        params.optimizer,
        _classes(torch.optim, torch.optim.Optimizer),
        "torch.optim",
    )
    return construct(
        "train.optimizer_options",
        cls,
        params.optimizer_options,
        {"params": parameters, "lr": params.lr},
    )


def make_scheduler(
    params: TrainParams, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The `torch.optim.lr_scheduler` class that `train.scheduler` names, if any."""
    if params.scheduler is None:
        return None
    cls = find_class(
        "train.scheduler",
        params.scheduler,
        _classes(torch.optim.lr_scheduler, torch.optim.lr_scheduler.LRScheduler),
        "torch.optim.lr_scheduler",
    )
    return construct(
        "train.scheduler_options", cls, params.scheduler_options, {"optimizer": optimizer}
    )


# The tensor option of each loss that params give: one weight per class, or class 1's weight.
# (BCEWithLogitsLoss's own `weight` is one per row of a batch, which params cannot give.)
CLASS_WEIGHT = {"CrossEntropyLoss": "weight", "BCEWithLogitsLoss": "pos_weight"}


def make_loss(params: TrainParams, device: torch.device) -> nn.Module:
    """The `torch.nn` loss that `train.loss` names, with `train.loss_options` (`label_smoothing`,
    a class `weight`, `pos_weight`, `delta`): a weight is made the tensor that the class takes."""
    cls = getattr(nn, LOSSES[params.loss].module)
    accepted = inspect.signature(cls).parameters
    options = dict(params.loss_options)
    for name, value in options.items():
        if name in accepted and "Tensor" in str(accepted[name].annotation):
            key = f"train.loss_options.{name}"
            if name != CLASS_WEIGHT.get(cls.__name__):
                raise UserError(
                    f"{key}: {cls.__name__} takes one {name} per row of a batch, which params "
                    "cannot give; pos_weight weighs class 1"
                )
            options[name] = _class_weights(key, value, per_class=cls is nn.CrossEntropyLoss)
    # Each piece's mean loss is weighed by its share of the step's rows, and every row counts.
    fixed = {"size_average": None, "reduce": None, "reduction": "mean", "ignore_index": -100}
    given = {name: value for name, value in fixed.items() if name in accepted}
    loss_fn = construct("train.loss_options", cls, options, given)
    refuse_negative_label_smoothing(loss_fn)
    return loss_fn.to(device)


def refuse_negative_label_smoothing(loss_fn: nn.Module) -> None:
    """CrossEntropyLoss refuses a `label_smoothing` above 1 but trains with a negative one as
    with 0, without a word (pytorch/pytorch#134767)."""
    smoothing = getattr(loss_fn, "label_smoothing", 0.0)
    if isinstance(smoothing, int | float) and smoothing < 0:
        raise UserError(
            f"train.loss_options.label_smoothing must be between 0 and 1, got {smoothing:g}"
        )


def _class_weights(key: str, value: object, per_class: bool) -> torch.Tensor:
    """A list of weights, one per class (or class 1's, one number or a list of it), as a float32
    tensor: each a finite number > 0 (a class weighing nothing would make a batch of only that
    class 0/0)."""
    values = value if isinstance(value, list) else [value]
    numbers = [like_default(item, 0.0) for item in values]
    shaped = isinstance(value, list) if per_class else len(values) == 1
    if not shaped or not numbers or not all(map(_positive, numbers)):
        expected = (
            "a list of finite numbers > 0, one per class"
            if per_class
            else "one finite number > 0, class 1's weight (the model has one output)"
        )
        raise UserError(f"{key} must be {expected}, got {value!r}")
    return torch.tensor(numbers if per_class else numbers[0], dtype=torch.float32)


def _positive(number: object) -> bool:
    if not isinstance(number, int | float) or isinstance(number, bool):
        return False
    try:
        return math.isfinite(float(number)) and number > 0
    except OverflowError:  # an int beyond any float
        return False


def refuse_class_weights_over_pieces(
    loss_fn: nn.Module, train: DataLoader, test: DataLoader
) -> None:
    """A class weight makes CrossEntropyLoss's mean one weighted over the rows of one call: a
    step in several pieces (chunks, processes), each weighed by its rows, would not be that."""
    if getattr(loss_fn, "weight", None) is None or not isinstance(loss_fn, nn.CrossEntropyLoss):
        return
    processes = process_rank()[1]
    chunks = max(train.dataset.table.num_chunks, test.dataset.table.num_chunks)
    if processes > 1 or chunks > 1:
        pieces = (
            f"{processes} processes" if processes > 1 else f"{chunks} chunks of data.chunk_rows"
        )
        raise UserError(
            f"train.loss_options.weight: a class weight needs each step in one piece, and here "
            f"it comes in {pieces}, whose weighted means would not add up to the step's; use "
            "train.processes: 1, and a data.chunk_rows of at least the table's rows"
        )


def l2_penalty(model: nn.Module, l2: float, rows: int) -> torch.Tensor:
    """0.5 * l2 * |weights|^2 for the sum of the row losses (scikit-learn's C = 1 / l2), as a
    share of their mean: divided by the rows. Biases are not penalised."""
    weights = [p for name, p in model.named_parameters() if name.split(".")[-1] != "bias"]
    return sum((weight * weight).sum() for weight in weights) * (0.5 * l2 / rows)


def forward_pass(model: nn.Module, batch: Batch, classes: int | None = None) -> torch.Tensor:
    """model(X), checked to give one output per row (one per class of a multi-class target):
    a loss would broadcast any other shape."""
    users_model = getattr(model, "module", model)  # inside DistributedDataParallel
    with failing_as("model.name", users_model):
        y_pred = model(batch.X)
    if not isinstance(y_pred, torch.Tensor):
        raise UserError(
            f"model.name: {type(users_model).__name__}.forward returns a "
            f"{type(y_pred).__name__}; expected a tensor, one output per row"
        )
    expected = batch.y.shape if classes is None else (batch.y.shape[0], classes)
    if y_pred.shape != expected:
        per_row = "output" if classes is None else f"output per class ({classes})"
        hint = ""
        if classes is not None and not takes_out_features(users_model):
            hint = (
                f": {type(users_model).__name__} takes no out_features; a model that does gets "
                "one per class from the data (model.name=mlp, for one)"
            )
        raise UserError(
            f"model.name: the model returns shape {tuple(y_pred.shape)} for a batch of "
            f"{tuple(batch.X.shape)}; expected {tuple(expected)}, one {per_row} per row{hint}"
        )
    return y_pred


def classes_of(dataloader: DataLoader) -> int | None:
    """The classes of a multi-class target; None for one output per row."""
    classes = dataloader.dataset.features.classes
    return len(classes) if classes else None


def _loss(
    model: nn.Module,
    batch: Batch,
    loss_fn: nn.Module,
    l2: float,
    rows: int,
    penalise: bool,
    classes: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass, and the batch's loss weighted by its share of the step."""
    y_pred = forward_pass(model, batch, classes)
    with failing_as("train.loss", loss_fn):  # a class `weight` for other classes, say
        loss = loss_fn(y_pred, batch.y) * batch.share  # a share of 1.0 leaves every bit
    if l2 and penalise:  # once in each step of each process
        loss = loss + l2_penalty(model, l2, rows)
    return loss, y_pred


def count_correct(y_pred: torch.Tensor, batch: Batch, loss_fn: nn.Module) -> int | None:
    """How many rows a classifier gets right, as the course's `accuracy_fn` counts them
    (`torch.round(torch.sigmoid(logits))`, or the `argmax` of several); None for a regression."""
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        y_pred_class = torch.round(torch.sigmoid(y_pred))
    elif isinstance(loss_fn, nn.CrossEntropyLoss):
        y_pred_class = torch.softmax(y_pred, dim=1).argmax(dim=1)
    else:
        return None
    if batch.share == 0:  # a placeholder row (see `Batch`) counts for nothing
        return 0
    return int(torch.eq(batch.y, y_pred_class).sum().item())


def _accuracy(correct: list[int | None], rows: int) -> float | None:
    """The share of a split's rows predicted right, over every process; None for a regression."""
    if not correct or None in correct:
        return None
    return sum_over_processes(float(sum(correct))) / rows


def train_step(
    model: nn.Module,
    dataloader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    l2: float = 0.0,
) -> tuple[float, float | None]:
    """One epoch of training; returns the train loss over the split, and a classifier's
    accuracy (None for a regression), as the course's `train_step` does.

    Without a batch size this is the course's single whole-split step (the loss and accuracy
    before it); with one, a step per mini-batch (the mean of the batches' losses).
    """
    rows, world_size = dataloader.dataset.rows, process_rank()[1]
    model.train()
    correct: list[int | None] = []
    if dataloader.dataset.full_batch:

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            total = torch.zeros(())
            first_evaluation = not correct  # LBFGS evaluates several times in one step
            for index, batch in enumerate(dataloader):
                # The gradients add up in .grad piece by piece: DistributedDataParallel need
                # average them over the processes only once, in the last piece's backward
                # (its forward pass too must be outside `no_sync`).
                last = index == len(dataloader) - 1
                with nullcontext() if last or world_size == 1 else model.no_sync():
                    loss, y_pred = _loss(
                        model, batch, loss_fn, l2, rows, index == 0, classes_of(dataloader)
                    )
                    loss.backward()
                total = total + loss.detach().cpu()
                if first_evaluation:
                    correct.append(count_correct(y_pred.detach(), batch, loss_fn))
            return torch.tensor(sum_over_processes(total.item()) / world_size)

        if isinstance(optimizer, torch.optim.LBFGS):
            with failing_as("train.optimizer", optimizer):
                train_loss = optimizer.step(closure).item()  # the loss of its first evaluation
        else:
            train_loss = closure().item()
            with failing_as("train.optimizer", optimizer):
                optimizer.step()
        return train_loss, _accuracy(correct, rows)
    total = 0.0
    for batch in dataloader:
        loss, y_pred = _loss(model, batch, loss_fn, l2, rows, True, classes_of(dataloader))
        optimizer.zero_grad()
        loss.backward()
        with failing_as("train.optimizer", optimizer):
            optimizer.step()
        total += loss.item() * batch.step_rows
        correct.append(count_correct(y_pred.detach(), batch, loss_fn))
    return sum_over_processes(total) / (world_size * rows), _accuracy(correct, rows)


def test_step(
    model: nn.Module, dataloader: DataLoader, loss_fn: nn.Module
) -> tuple[float, float | None]:
    """The loss on held-out data under `torch.inference_mode()`, and a classifier's accuracy."""
    model.eval()
    total = 0.0
    correct: list[int | None] = []
    with torch.inference_mode():
        for batch in dataloader:
            test_pred = forward_pass(model, batch, classes_of(dataloader))
            with failing_as("train.loss", loss_fn):
                test_loss = loss_fn(test_pred, batch.y)
            total += test_loss.item() * batch.share
            correct.append(count_correct(test_pred, batch, loss_fn))
    loss = sum_over_processes(total) / process_rank()[1]
    return loss, _accuracy(correct, dataloader.dataset.rows)


def train(
    model: nn.Module,
    train_dataloader: DataLoader,
    test_dataloader: DataLoader,
    params: TrainParams,
    log: Callable[[str], None] = print,
    on_log: Callable[[list[EpochResult]], None] | None = None,
) -> list[EpochResult]:
    """Train for `params.epochs`; log the course's line every `params.log_every` epochs.

    `on_log` gets the losses so far whenever a line is logged, and after the last epoch.
    """
    rank, world_size = process_rank()
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise UserError(f"model.name: {type(model).__name__} has no parameters to train")
    device = next(model.parameters()).device
    loss_fn = make_loss(params, device)
    refuse_class_weights_over_pieces(loss_fn, train_dataloader, test_dataloader)
    # DistributedDataParallel averages the gradients of the processes in each backward pass.
    trained = model
    if world_size > 1:
        on_gpu = [device] if device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=on_gpu)
    optimizer = make_optimizer(params, trained.parameters())
    scheduler = make_scheduler(params, optimizer)
    scheduler_options = (
        f"train.scheduler_options {params.scheduler_options}" if params.scheduler_options else ""
    )
    label = LOSSES[params.loss].label
    rows = train_dataloader.dataset.rows
    history: list[EpochResult] = []
    with _progress_bar(params.epochs, rank) as bar:
        # Through the bar's own writer, log lines do not tear the bar.
        write_line = log if bar is None else bar.write
        for epoch in range(params.epochs):
            train_dataloader.dataset.set_epoch(epoch)
            train_loss, train_acc = train_step(
                trained, train_dataloader, loss_fn, optimizer, params.l2
            )
            test_loss, test_acc = test_step(model, test_dataloader, loss_fn)
            if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
                raise UserError(
                    f"training diverged: the {label} loss became {train_loss:.3g} (train), "
                    f"{test_loss:.3g} (test) at epoch {epoch} with train.lr={params.lr:g}; "
                    "try a smaller train.lr"
                )
            lr = optimizer.param_groups[0]["lr"] if scheduler is not None else None
            with failing_as("train.scheduler", scheduler, scheduler_options):
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(test_loss)  # the held-out loss, as the course's validation
                elif scheduler is not None:
                    scheduler.step()
            history.append(EpochResult(epoch, train_loss, test_loss, train_acc, test_acc, lr))
            if bar is not None:
                bar.update()
                if rate := bar.format_dict.get("rate"):
                    bar.set_postfix_str(f"{rate * rows:,.0f} rows/s", refresh=False)
            if epoch % params.log_every == 0:
                write_line(history[-1].log_line(label))
            last = epoch == params.epochs - 1
            if on_log is not None and (epoch % params.log_every == 0 or last):
                on_log(history)
    return history


@contextmanager
def failing_as(key: str, instance: object, options: str = "") -> Iterator[None]:
    """An error that the user's model, optimizer or scheduler raises as it runs, as one line
    naming the param (and the `options` it was made with): options are checked against a
    class's signature, not against each other or the data (a `StepLR` with `step_size: 0`
    fails only when it steps; a model built for other features fails on its first batch)."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        where = line_in_class_file(error, type(instance))
        # Torch's own errors about shapes and values; anything else only where the class's own
        # code raised it (a typo in a user's forward), not from deeper in the pipeline.
        if not (where or isinstance(error, TORCH_ERRORS)):
            raise
        with_options = f" with {options}" if options else ""
        raise UserError(
            f"{key}: {type(instance).__name__} failed{with_options}: {described(error)}{where}"
        ) from None


@contextmanager
def _progress_bar(epochs: int, rank: int) -> Iterator["tqdm | None"]:
    """A progress bar (epochs, and rows per second) on a terminal; none in logs and CI."""
    if rank != 0 or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=epochs, desc="train", unit="epoch", leave=False) as bar:
        yield bar
