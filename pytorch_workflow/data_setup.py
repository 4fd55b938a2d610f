"""The data: the course's straight line (or the user's CSV, `csv_data`), split into train and
test, and the features' standardisation.

Tables are float32 Parquet files (`tables`), features first and the target last. They are
written and read one row group of `data.chunk_rows` rows at a time, so a stage holds about one
chunk in memory whatever the number of rows. The split is one more file beside the dataset: a
true/false column, row for row, that says which rows are train rows. No torch here: the data
stages stay light.
"""

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pytorch_workflow.errors import UserError, first_line
from pytorch_workflow.files import atomic_write_json
from pytorch_workflow.params import (
    CLASSIFICATION,
    MULTICLASS,
    REGRESSION,
    DataParams,
    SplitParams,
    line_length,
    train_rows,
)
from pytorch_workflow.tables import (
    Chunks,
    ParquetTable,
    TableWriter,
    arrow_table,
    numpy_column,
    open_parquet,
    read_row_group,
)

# The split file's footer: how many train rows each of its row groups has (a JSON list).
TRAIN_ROWS = "pytorch_workflow.train_rows"
# The column of data/test_predictions.parquet: the model's raw output for each test row.
OUTPUT_COLUMN = "output"


def output_columns(outputs: int) -> list[str]:
    """data/test_predictions.parquet's columns: `output`, or `output_0` ... one per class."""
    return [OUTPUT_COLUMN] if outputs == 1 else [f"{OUTPUT_COLUMN}_{i}" for i in range(outputs)]


# torch.arange fills float32 tensors eight values at a time: the first of each block is
# start + i*step rounded to float32, the rest add m*step to that rounded value in float64.
# Reproducing that in numpy makes the data, and so every loss, match the course to the digit
# on any machine (torch's own arange follows the SIMD width of the CPU it runs on), and keeps
# torch out of the data stages.
_ARANGE_BLOCK = 8


def course_arange(start: float, step: float, count: int, first: int, stop: int) -> np.ndarray:
    """Values `first` to `stop` of `torch.arange(start, end, step)` (float32), which has `count`."""
    first_block = first - first % _ARANGE_BLOCK
    block_starts = np.arange(first_block, stop, _ARANGE_BLOCK, dtype=np.int64).astype(np.float64)
    block_base = (start + step * block_starts).astype(np.float32).astype(np.float64)
    in_block = step * np.arange(_ARANGE_BLOCK, dtype=np.float64)
    values = (block_base[:, None] + in_block).astype(np.float32).reshape(-1)
    values = values[first - first_block : stop - first_block]
    # The last partial block is filled one value at a time: start + i*step.
    tail_start = max(first, (count // _ARANGE_BLOCK) * _ARANGE_BLOCK)
    if tail_start < stop:
        tail = np.arange(tail_start, stop, dtype=np.int64).astype(np.float64)
        values[tail_start - first :] = (start + step * tail).astype(np.float32)
    return values


def line_chunks(params: DataParams, seed: int) -> Iterator[pa.Table]:
    """X from start to end by step; y = weight * X + bias (+ seeded Gaussian noise), float32."""
    count = int(line_length(params.start, params.end, params.step))
    noise = np.random.default_rng(seed) if params.noise_std > 0 else None
    for first in range(0, count, params.chunk_rows):
        stop = min(first + params.chunk_rows, count)
        x = course_arange(params.start, params.step, count, first, stop)
        # float32 arithmetic, as torch does `weight * X + bias` on a float32 tensor.
        with np.errstate(over="ignore"):
            y = np.float32(params.weight) * x + np.float32(params.bias)
            if noise is not None:
                drawn = noise.normal(0.0, params.noise_std, size=stop - first)
                y = (y.astype(np.float64) + drawn).astype(np.float32)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise UserError(
                "params.yaml: data.weight * X + data.bias overflows float32 "
                f"(|value| > {np.finfo(np.float32).max:.3g}); use smaller data values"
            )
        yield arrow_table({"x": x, "y": y})


# ---- the split ---------------------------------------------------------------------------------

SIDES = ("train", "test")
# The split file's one column: for each row of the dataset, whether it is a train row.
SPLIT_COLUMN = "train"


@dataclass
class ColumnStats:
    """Count, mean and sum of squared deviations of each column, merged chunk by chunk."""

    count: int
    mean: np.ndarray  # float64, one value per column
    m2: np.ndarray

    @classmethod
    def empty(cls, columns: int) -> "ColumnStats":
        return cls(0, np.zeros(columns), np.zeros(columns))

    def add(self, values: list[np.ndarray]) -> None:
        """Merge a chunk's columns (Chan et al.'s pairwise update, in float64)."""
        rows = len(values[0])
        if rows == 0:
            return
        means = np.array([np.mean(column, dtype=np.float64) for column in values])
        m2 = np.array(
            [
                _sum_of_squares(column.astype(np.float64), mean)
                for column, mean in zip(values, means, strict=True)
            ]
        )
        total = self.count + rows
        delta = means - self.mean
        self.mean = self.mean + delta * (rows / total)
        self.m2 = self.m2 + m2 + np.square(delta) * (self.count * rows / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count)


def _sum_of_squares(values: np.ndarray, mean: float) -> float:
    """The sum of squared deviations from `mean`, computed in place in `values` (float64)."""
    values -= mean
    return float(np.sum(np.square(values, out=values)))


# A multi-class target with more classes than this is a regression target by mistake.
MAX_CLASSES = 1000


def class_name(label: float) -> str:
    """A class label as people write it: 3, not 3.0 or 1e+06."""
    return str(int(label))


def checked_classes(
    classes: dict[str, Counter[float]], task: str, drawn: bool = False
) -> tuple[float, ...]:
    """A classifier's classes, as the train split has them, in order; refused when there are
    fewer than two or (by far) too many, or test has one that train has not. `drawn`: the split
    chose the test rows (no data.test_path)."""
    train, test = classes["train"], classes["test"]
    unseen = sorted(set(test) - set(train))
    hint = " (split.stratify: true puts each class in both splits)" if drawn and unseen else ""
    if task == CLASSIFICATION and len(train) < 2:
        (only, rows), *_ = train.items()
        raise UserError(
            f"task {CLASSIFICATION}: the train split has only class {class_name(only)} "
            f"({rows:,} row{'s' * (rows != 1)}); a model needs rows of both 0 and 1 to learn{hint}"
        )
    if len(train) < 2:
        raise UserError(
            f"task {MULTICLASS}: the train split has {len(train)} class(es); it needs two "
            f"or more (for two, task: binary_classification is the course's){hint}"
        )
    if len(train) > MAX_CLASSES:
        raise UserError(
            f"task {MULTICLASS}: the target has {len(train):,} classes in the train split, "
            f"more than {MAX_CLASSES:,}; is it a regression target (task: regression)?"
        )
    if unseen:
        raise UserError(
            f"task {MULTICLASS}: class {class_name(unseen[0])} is in the test split but not in the "
            f"train split ({test[unseen[0]]} row(s)); a model cannot learn it{hint}"
        )
    return tuple(sorted(train))


@dataclass(frozen=True)
class SplitSummary:
    rows: dict[str, int]
    stats: dict[str, ColumnStats]  # by side; the target is the last column
    task: str
    classes: dict[str, Counter[float]]  # by side: rows of each class (classifiers only)
    drawn: str  # how the test rows were chosen: "in order", "at random" or "given"

    def metrics(self) -> dict[str, dict[str, float | int]]:
        """What `metrics/split.json` records: rows and the target's mean (or the number of
        classes) in each split."""
        if self.task == MULTICLASS:
            return {
                side: {"rows": self.rows[side], "classes": len(self.classes[side])}
                for side in SIDES
            }
        name = "class_1_share" if self.task == CLASSIFICATION else "target_mean"
        return {
            side: {"rows": self.rows[side], name: float(self.stats[side].mean[-1])}
            for side in SIDES
        }

    def class_labels(self) -> tuple[float, ...] | None:
        """A multi-class task's classes, as the train split has them; checked against test."""
        return checked_classes(self.classes, MULTICLASS) if self.task == MULTICLASS else None

    def imbalance(self) -> str | None:
        """A note when train and test differ in their target more than chance would explain:
        in its mean, or in the share of a class (the class furthest apart, of several)."""
        # Per side: the mean, and the sum of squared deviations from it.
        compared: dict[str, dict[str, tuple[float, float]]] = {}
        if self.task == MULTICLASS:
            for label in sorted(self.classes["train"] | self.classes["test"]):
                total = self.classes["train"][label] + self.classes["test"][label]
                if total * min(self.rows.values()) / sum(self.rows.values()) < _FEWEST_EXPECTED:
                    continue  # too rare for the normal approximation
                shares = {side: self.classes[side][label] / self.rows[side] for side in SIDES}
                compared[f"share of class {class_name(label)}"] = {
                    side: (share, self.rows[side] * share * (1 - share))
                    for side, share in shares.items()
                }
        else:
            what = "share of class 1" if self.task == CLASSIFICATION else "target mean"
            compared[what] = {
                side: (float(self.stats[side].mean[-1]), float(self.stats[side].m2[-1]))
                for side in SIDES
            }
        apart = {what: self._standard_errors_apart(sides) for what, sides in compared.items()}
        # Three standard errors for one comparison (a random split exceeds it 0.27 % of the
        # time); for several classes, the same chance for the worst of them (Bonferroni).
        threshold = NormalDist().inv_cdf(1 - _CHANCE / (2 * max(1, len(apart))))
        worst = max(apart, key=apart.__getitem__, default=None)
        if worst is None or apart[worst] <= threshold:
            return None
        (train_mean, _), (test_mean, _) = compared[worst]["train"], compared[worst]["test"]
        return (
            f"the {worst} is {train_mean:.4g} in train and {test_mean:.4g} in test, "
            f"{apart[worst]:.1f} standard errors apart: {_IMBALANCE_ADVICE[self.drawn]}"
        )

    def _standard_errors_apart(self, sides: dict[str, tuple[float, float]]) -> float:
        """How far apart two sides' means are, in standard errors of their difference (pooled
        variance); 0 for a value that is constant on both sides."""
        train, test = self.rows["train"], self.rows["test"]
        pooled = (sides["train"][1] + sides["test"][1]) / (train + test)
        error = math.sqrt(pooled * (1 / train + 1 / test))
        return abs(sides["test"][0] - sides["train"][0]) / error if error else 0.0


# How often a random split may be called imbalanced: that of three standard errors.
_CHANCE = 2 * (1 - NormalDist().cdf(3.0))
# A class expected fewer times than this in the smaller side is not compared.
_FEWEST_EXPECTED = 5
_IMBALANCE_ADVICE = {
    "in order": "more than a random split would give. The split follows the file's row order, "
    "as the course's does; split.shuffle: true draws a random one",
    "at random": f"a random split gives this about once in {1 / _CHANCE:.0f}; another seed "
    "draws another",
    "given": "the given test split (data.test_path) is not drawn like the train rows",
}


def split_dataset(
    dataset: ParquetTable, params: SplitParams, task: str, seed: int, split_path: Path
) -> tuple[SplitSummary, ColumnStats]:
    """Decide in one pass which rows of the dataset are train rows, and record it in
    `split_path`: the rows stay in the dataset, and `read_split` gives each side.

    Returns what the split did and the train split's column statistics (for standardising).
    """
    target = dataset.columns[-1]
    if dataset.given_test_rows:  # the given test split, as it is: the rows before it are train
        params = SplitParams(params.train_fraction, shuffle=False, stratify=False)
        select = _selector(dataset, params, seed, dataset.rows - dataset.given_test_rows)
    else:
        select = _selector(dataset, params, seed, train_rows(params.train_fraction, dataset.rows))
    stats = {side: ColumnStats.empty(len(dataset.columns)) for side in SIDES}
    classes: dict[str, Counter[float]] = {side: Counter() for side in SIDES}
    train_counts: list[int] = []
    with TableWriter(split_path, None) as writer:  # row groups as in the dataset
        for index in range(dataset.num_chunks):
            columns = dataset.chunk(index)
            in_train = select(index, columns[target])
            writer.append(arrow_table({SPLIT_COLUMN: in_train}))
            train_counts.append(int(in_train.sum()))
            for side, mask in zip(SIDES, (in_train, ~in_train), strict=True):
                if not mask.any():
                    continue
                picked = columns if mask.all() else {n: v[mask] for n, v in columns.items()}
                stats[side].add(list(picked.values()))
                if task != REGRESSION:
                    labels, counts = np.unique(picked[target], return_counts=True)
                    classes[side].update(dict(zip(labels.tolist(), counts.tolist(), strict=True)))
        rows = {side: stats[side].count for side in SIDES}
        if not all(rows.values()):  # checked before the file is written, as the classes are
            raise UserError(
                f"{dataset.path}: the split leaves {rows['train']:,} train and {rows['test']:,} "
                "test rows; both need some (split.train_fraction, data.test_path)"
            )
        drawn = (
            "given" if dataset.given_test_rows else "at random" if params.shuffle else "in order"
        )
        if task != REGRESSION:
            checked_classes(classes, task, drawn=drawn != "given")
        writer.footer[TRAIN_ROWS] = json.dumps(train_counts)
    return SplitSummary(rows, stats, task, classes, drawn), stats["train"]


class SplitTable(Chunks):
    """One side of the split: the dataset's rows that the split file gives it, in the dataset's
    order, read as a `ParquetTable` is, one chunk (a row group of the dataset) at a time.

    A row group that holds rows of both sides (every group of a shuffled or stratified split)
    is read whole and cut to this side's rows.
    """

    def __init__(
        self,
        dataset: ParquetTable,
        split: pq.ParquetFile,
        split_path: Path,
        side: str,
        group_rows: list[int],
    ) -> None:
        self.path = dataset.path
        self.columns = dataset.columns
        self.side = side
        self._dataset, self._split, self._split_path = dataset, split, split_path
        # The dataset's row groups that hold rows of this side, and whether they hold only them.
        self._groups = [group for group, count in enumerate(group_rows) if count]
        lengths = dataset.chunk_lengths
        self._whole = [group_rows[group] == lengths[group] for group in self._groups]
        self.offsets = [0, *itertools.accumulate(group_rows[group] for group in self._groups)]
        self.rows = self.offsets[-1]
        if self.rows == 0:
            raise UserError(f"{split_path}: the {side} split has no rows; run `dvc repro`")

    def chunk(self, index: int) -> dict[str, np.ndarray]:
        """This side's rows of the dataset's row group, as float32 arrays (see ParquetTable)."""
        group = self._groups[index]
        columns = self._dataset.chunk(group)
        if self._whole[index]:
            return columns
        in_side = train_mask(self._split, self._split_path, group)
        if self.side != "train":
            in_side = ~in_side
        if np.count_nonzero(in_side) != self.offsets[index + 1] - self.offsets[index]:
            raise UserError(
                f"{self._split_path}: its footer's row counts do not match its rows; run "
                "`dvc repro`"
            )
        return {name: values[in_side] for name, values in columns.items()}


def read_split(
    dataset_path: Path, split_path: Path, columns: Iterable[str] | None = None
) -> tuple[SplitTable, SplitTable]:
    """The train and test sides of the dataset, as the split stage recorded them."""
    dataset = ParquetTable(dataset_path, columns)
    split = open_parquet(split_path)
    problem, train_counts = _train_counts(split, dataset)
    if problem:
        raise UserError(
            f"{split_path}: not the split of {dataset_path} ({problem}); run `dvc repro`"
        )
    test_counts = [
        length - count for length, count in zip(dataset.chunk_lengths, train_counts, strict=True)
    ]
    return (
        SplitTable(dataset, split, split_path, "train", train_counts),
        SplitTable(dataset, split, split_path, "test", test_counts),
    )


def _train_counts(split: pq.ParquetFile, dataset: ParquetTable) -> tuple[str, list[int]]:
    """The train rows of each row group, as the split file's footer counts them, or why the
    file cannot be the dataset's split (its column, its row groups, its footer): (why, counts)."""
    if split.schema_arrow.names != [SPLIT_COLUMN] or split.schema_arrow.types != [pa.bool_()]:
        return f"not one true/false column named {SPLIT_COLUMN}", []
    lengths = dataset.chunk_lengths
    if [split.metadata.row_group(g).num_rows for g in range(split.num_row_groups)] != lengths:
        return "its rows do not line up with the dataset's", []
    try:
        counts = json.loads((split.metadata.metadata or {})[TRAIN_ROWS.encode()])
    except KeyError:
        return "its footer does not count the train rows", []
    except (ValueError, RecursionError):
        counts = None
    if (
        not isinstance(counts, list)
        or len(counts) != len(lengths)
        or not all(type(n) is int and 0 <= n <= m for n, m in zip(counts, lengths, strict=True))
    ):
        return "its footer's count of the train rows is damaged", []
    return "", counts


def train_mask(split: pq.ParquetFile, split_path: Path, group: int) -> np.ndarray:
    """Which rows of the dataset's row group `group` are train rows."""
    column = read_row_group(split, split_path, group, [SPLIT_COLUMN]).column(0)
    if column.null_count:
        raise UserError(f"{split_path}: column {SPLIT_COLUMN} has empty values; run `dvc repro`")
    return numpy_column(column)


def _selector(
    dataset: ParquetTable, params: SplitParams, seed: int, train_size: int
) -> Callable[[int, np.ndarray], np.ndarray]:
    """For each chunk: which of its rows go to train.

    In order (the course's split): the first `train_size` rows, or with `stratify` the first
    share of each class. With `shuffle`: the rows whose seeded random keys are the smallest, an
    exact count drawn without holding a permutation of every row in memory.
    """
    if not params.shuffle and not params.stratify:  # the course's: the first train_size rows
        return lambda index, _: np.arange(*dataset.offsets[index : index + 2]) < train_size
    # The passes over the rows below need only the target: read only its column.
    targets = ParquetTable(dataset.path, dataset.columns[-1:])
    # The number of train rows of each group: of each class, or of all rows (None).
    if params.stratify:
        counts: Counter[float] = Counter()
        for chunk in targets:
            labels, number = np.unique(chunk[targets.columns[0]], return_counts=True)
            counts.update(dict(zip(labels.tolist(), number.tolist(), strict=True)))
        sizes: dict[float | None, int] = {}
        for label, count in sorted(counts.items()):
            sizes[label] = int(params.train_fraction * count)
            if not 1 <= sizes[label] < count:
                raise UserError(
                    f"split.stratify: class {label:g} has {count} row(s), too few to put some in "
                    f"both train and test at split.train_fraction={params.train_fraction:g}"
                )
    else:
        sizes = {None: train_size}

    def groups(labels: np.ndarray) -> dict[float | None, np.ndarray]:
        return {
            label: np.ones(len(labels), dtype=bool) if label is None else labels == label
            for label in sizes
        }

    if params.shuffle:
        thresholds = {
            label: _kth_smallest_key(targets, seed, size, label) for label, size in sizes.items()
        }

        def shuffled(index: int, labels: np.ndarray) -> np.ndarray:
            keys = row_keys(seed, dataset.offsets[index], dataset.offsets[index + 1])
            in_train = np.zeros(len(labels), dtype=bool)
            for label, members in groups(labels).items():
                in_train |= members & (keys <= thresholds[label])
            return in_train

        return shuffled
    seen = dict.fromkeys(sizes, 0)

    def in_order(index: int, labels: np.ndarray) -> np.ndarray:
        in_train = np.zeros(len(labels), dtype=bool)
        for label, members in groups(labels).items():
            rank = seen[label] + np.cumsum(members) - 1  # each member's place in its group
            in_train |= members & (rank < sizes[label])
            seen[label] += int(members.sum())
        return in_train

    return in_order


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def row_keys(seed: int, first: int, stop: int) -> np.ndarray:
    """A seeded random 64-bit key for each row number (splitmix64: distinct, integer-exact)."""
    state = (np.arange(first + 1, stop + 1, dtype=np.uint64) + np.uint64(seed)) * _GOLDEN
    state ^= state >> np.uint64(30)
    state *= np.uint64(0xBF58476D1CE4E5B9)
    state ^= state >> np.uint64(27)
    state *= np.uint64(0x94D049BB133111EB)
    return state ^ (state >> np.uint64(31))


def _kth_smallest_key(targets: ParquetTable, seed: int, k: int, label: float | None) -> np.uint64:
    """The k-th smallest row key (of the rows whose target is `label`), 16 bits per pass over
    the rows of `targets` (the target column)."""
    prefix = 0
    rank = k
    for shift in (48, 32, 16, 0):
        counts = np.zeros(1 << 16, dtype=np.int64)
        for index in range(targets.num_chunks):
            keys = row_keys(seed, targets.offsets[index], targets.offsets[index + 1])
            if label is not None:
                keys = keys[targets.chunk(index)[targets.columns[0]] == label]
            if shift < 48:
                keys = keys[(keys >> np.uint64(shift + 16)) == np.uint64(prefix)]
            digits = ((keys >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.int64)
            counts += np.bincount(digits, minlength=1 << 16)
        cumulative = np.cumsum(counts)
        digit = int(np.searchsorted(cumulative, rank))
        rank -= int(cumulative[digit - 1]) if digit else 0
        prefix = (prefix << 16) | digit
    return np.uint64(prefix)


# ---- features and standardisation --------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """Which columns are features and target, and the standardisation fitted on train."""

    names: tuple[str, ...]
    target: str
    mean: np.ndarray | None = None  # float32, shape (k,); None when not standardising
    std: np.ndarray | None = None
    # A multi-class target's labels, in the order of the model's outputs; None otherwise.
    classes: tuple[float, ...] | None = None

    @property
    def outputs(self) -> int:
        """The model's outputs per row: one per class of a multi-class target, else one."""
        return len(self.classes) if self.classes else 1

    def class_indices(self, labels: np.ndarray) -> np.ndarray:
        """Each label's place among `classes` (int64), the targets of `nn.CrossEntropyLoss`."""
        assert self.classes is not None
        return np.searchsorted(np.asarray(self.classes, dtype=np.float32), labels).astype(np.int64)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.names, self.target)

    def matrix(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """A chunk's features as one standardised, contiguous float32 array (n, k)."""
        X = np.column_stack([columns[name] for name in self.names])
        return np.ascontiguousarray(self.scale(X), dtype=np.float32)

    def scale(self, X: np.ndarray) -> np.ndarray:
        """Standardised float32 features: (X - mean) / std, elementwise in float32."""
        if self.mean is None or self.std is None:
            return X
        return (X - self.mean) / self.std


def fitted_features(
    columns: list[str],
    train: ColumnStats,
    standardize: bool,
    classes: tuple[float, ...] | None = None,
) -> Features:
    """The features; with `standardize`, their mean and std on the train split (float32)."""
    names, target = tuple(columns[:-1]), columns[-1]
    if not standardize:
        return Features(names, target, classes=classes)
    std = train.std[:-1]
    # A constant feature carries no information; dividing by 1 keeps it finite.
    std = np.where(std > 0, std, 1.0)
    mean = train.mean[:-1].astype(np.float32)
    return Features(names, target, mean, std.astype(np.float32), classes)


def write_features(path: str | Path, features: Features) -> None:
    atomic_write_json(
        path,
        {
            "features": list(features.names),
            "target": features.target,
            "mean": None if features.mean is None else features.mean.tolist(),
            "std": None if features.std is None else features.std.tolist(),
            "classes": None if features.classes is None else list(features.classes),
        },
    )


def read_features(path: str | Path) -> Features:
    """`data/features.json`, checked: names, and a finite mean and positive std per feature."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        names, target = tuple(payload["features"]), payload["target"]
        mean, std = payload["mean"], payload["std"]
        if not names or not all(isinstance(name, str) for name in (*names, target)):
            raise ValueError("features and target must be column names")
        mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        std = None if std is None else np.asarray(std, dtype=np.float32)
        classes = payload.get("classes")
        if classes is not None:
            classes = tuple(float(label) for label in classes)
            if len(classes) < 2 or list(classes) != sorted(set(classes)):
                raise ValueError("classes must be two or more distinct labels, in order")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run `dvc repro` to make it") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path}: not a readable features file ({first_line(error, 200)})"
        ) from None
    if (mean is None) != (std is None):
        raise UserError(f"{path}: mean and std must both be set or both be null")
    if mean is not None:
        if mean.shape != (len(names),) or std.shape != (len(names),):
            raise UserError(f"{path}: mean and std need one value per feature ({len(names)})")
        bad = ~(np.isfinite(mean) & np.isfinite(std) & (std > 0))
        if bad.any():
            name = names[int(np.flatnonzero(bad)[0])]
            raise UserError(f"{path}: feature {name!r} needs a finite mean and a std > 0")
    return Features(names, target, mean, std, classes)
