"""Benchmark the pipeline: against the course's one-process run, and against its own imports.

    python benchmarks/pipeline_benchmark.py               # 5 runs of every figure
    python benchmarks/pipeline_benchmark.py --quick       # 1 run each, 1M rows for 10M: a smoke run
    python benchmarks/pipeline_benchmark.py --repeat 9 --large-step 1e-7

Every pipeline run happens in a fresh `git clone` of this repository's HEAD in a temporary
folder (so there is no DVC cache and nothing reproduced yet), with this Python's environment
first on PATH, as `make repro` sets it: DVC runs each stage's `python -m stages.NAME` through
the shell. The sides of each pair run alternately, in reversed order every other round, so a
machine that gets busier or quieter during the run weighs on both alike. Figures are medians;
ratios are ratios of medians. Peak RSS is that of the largest single process a command starts.

The report (markdown) goes to stdout, progress to stderr. The exit status is 0 whether or not
a target is met: this measures, it does not gate.
"""

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COURSE_RUN = Path(__file__).resolve().with_name("course_first_run.py")
STAGES = ("prepare", "split", "train", "evaluate", "export")
# Where the pipeline writes what DVC hashes and caches (sizes shown in the notes).
OUTPUT_DIRS = ("data", "models")

COURSE_STEP = 0.02  # the course's 50 rows
LARGE_STEP = 1e-7  # 10 million rows
QUICK_LARGE_STEP = 1e-6  # 1 million rows: enough to see the large-data code paths run

# The targets. A missed target is reported with its reasons, never loosened.
TARGET_COLD_OVER_COURSE = 2.5
TARGET_COLD_OVER_IMPORTS = 1.25
TARGET_LARGE_OVER_COURSE = 2.0
TARGET_PEAK_RSS = 1.2e9  # bytes; decimal GB, the stricter reading of "1.2 GB"

# ru_maxrss is in KiB on Linux and in bytes on macOS.
RSS_UNIT = 1 if sys.platform == "darwin" else 1024
PYTHON = sys.executable

# Figure names: the keys of the measurements and the labels in the report.
COLD_REPRO = "cold `dvc repro`"
COURSE = "course's run in one process"
FLOOR = "import floor: 5 bare stage imports + `dvc status`"
FLOOR_STATUS = "`dvc status` before the first repro"
NOOP_REPRO = "no-op `dvc repro`"
NOOP_STATUS = "`dvc status`, up to date"
IMPORT_TORCH = "bare `python -c 'import torch'`"
LARGE_REPRO = "`dvc repro -f`"
LARGE_COURSE = "course's run in one process, large"
LARGE_COURSE_ONE_THREAD = "course's run in one process, large, 1 thread"
# torch's intra-op thread pool is sized from this; 1 shows what the pool costs or saves.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


class BenchmarkError(Exception):
    """A command the benchmark ran failed; the message holds the end of what it printed."""


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss: int  # bytes, of the largest process in the command's process tree


@dataclass
class Figure:
    """Every run of one measured command."""

    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def peak_rss(self) -> int:
        return max(run.peak_rss for run in self.runs)

    def spread(self) -> str:
        seconds = [run.seconds for run in self.runs]
        return f"{len(seconds)}: {min(seconds):.2f} to {max(seconds):.2f} s"


Figures = dict[str, Figure]


@dataclass(frozen=True)
class ImportProfile:
    """What `python -X importtime` reported for one command."""

    top_level: dict[str, float]  # seconds, cumulative, of each module imported at top level
    by_package: dict[str, float]  # seconds spent in each top-level package's own modules
    modules: frozenset[str]  # every module imported, at any depth

    @property
    def seconds(self) -> float:
        return sum(self.top_level.values())


@dataclass(frozen=True)
class Settings:
    repeat: int
    large_step: float
    workdir: Path
    commit: str
    env: dict[str, str]


# --- running commands ----------------------------------------------------------------------


def tool_env(workdir: Path) -> dict[str, str]:
    """This venv first on PATH (DVC finds `python` there), no analytics, state kept in workdir."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    # DVC keeps per-repository state under /var/tmp/dvc by default; one entry per temporary
    # clone would pile up there, so it goes into the folder that is deleted at the end.
    env["DVC_SITE_CACHE_DIR"] = str(workdir / "dvc-site-cache")
    env.pop("PYTHONPATH", None)
    return env


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> Run:
    """Wall time and the peak RSS of the largest process in the command's tree."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        # wait4's ru_maxrss is the largest of the child and of every descendant it waited
        # for, so DVC's stage processes count, and each measurement starts from zero.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            output.seek(0)
            printed = output.read().decode(errors="replace")[-4000:]
            raise BenchmarkError(
                f"`{' '.join(command)}` in {cwd} exited {process.returncode}:\n{printed}"
            )
    return Run(seconds, usage.ru_maxrss * RSS_UNIT)


def measure_all(commands: list[list[str]], cwd: Path, env: dict[str, str]) -> Run:
    """Run commands one after the other: their summed time and their largest process."""
    runs = [measure(command, cwd, env) for command in commands]
    return Run(sum(run.seconds for run in runs), max(run.peak_rss for run in runs))


def import_profile(command: list[str], cwd: Path, env: dict[str, str]) -> ImportProfile:
    """Run `python -X importtime ...` and read its report (microseconds, indented by depth)."""
    result = subprocess.run(
        [PYTHON, "-X", "importtime", *command], cwd=cwd, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchmarkError(f"`python -X importtime {' '.join(command)}` failed:\n{result.stderr}")
    top_level: dict[str, float] = defaultdict(float)
    by_package: dict[str, float] = defaultdict(float)
    modules: set[str] = set()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_time, cumulative, name_column = line.removeprefix("import time:").split("|", 2)
        name = name_column.strip()
        modules.add(name)
        by_package[name.split(".")[0]] += int(self_time) / 1e6
        # The name column is " " followed by two spaces per level of nesting.
        if len(name_column) - len(name_column.lstrip(" ")) == 1:
            top_level[name] += int(cumulative) / 1e6
    return ImportProfile(dict(top_level), dict(by_package), frozenset(modules))


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def fresh_clone(settings: Settings, name: str, step: float = COURSE_STEP) -> Path:
    """A clone of the benchmarked commit with nothing run and no DVC cache."""
    clone = settings.workdir / name
    git("clone", "--quiet", "--no-checkout", str(REPO), str(clone))
    git("checkout", "--quiet", settings.commit, cwd=clone)
    if step != COURSE_STEP:
        params_file = clone / "params.yaml"
        params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
        params["data"]["step"] = step
        params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return clone


def alternate(sides: list, round_number: int) -> list:
    """The sides in order on even rounds and reversed on odd ones, so drift hits both alike."""
    return sides if round_number % 2 == 0 else sides[::-1]


def stage_run(stage: str) -> list[str]:
    return [PYTHON, "-m", f"stages.{stage}"]


def stage_import(stage: str) -> list[str]:
    return [PYTHON, "-c", f"import stages.{stage}"]


def rows_for(step: float) -> int:
    """Rows the line makes from 0 to 1 (torch.arange's own length formula)."""
    return math.ceil(1.0 / step)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the measurements ------------------------------------------------------------------------


def course_sized_rounds(settings: Settings, figures: Figures) -> Path:
    """Figures 1-3 at the course's 50 rows; returns the last reproduced clone, kept for later."""
    env, workdir = settings.env, settings.workdir
    course = [PYTHON, str(COURSE_RUN), "--model-path", str(workdir / "course" / "model.pth")]
    reproduced: Path | None = None
    for round_number in range(settings.repeat):
        progress(f"50 rows, round {round_number + 1} of {settings.repeat}")
        cold = fresh_clone(settings, f"cold-{round_number}")
        floor = fresh_clone(settings, f"floor-{round_number}")
        sides = [
            (COLD_REPRO, partial(measure, ["dvc", "repro"], cold, env)),
            (COURSE, partial(measure, course, workdir, env)),
            (FLOOR, partial(import_floor, floor, env, figures)),
            (IMPORT_TORCH, partial(measure, [PYTHON, "-c", "import torch"], workdir, env)),
        ]
        for name, run in alternate(sides, round_number):
            figures[name].runs.append(run())
        noop = [(NOOP_STATUS, ["dvc", "status"]), (NOOP_REPRO, ["dvc", "repro"])]
        for name, command in alternate(noop, round_number):
            figures[name].runs.append(measure(command, cold, env))
        shutil.rmtree(floor)
        if reproduced is not None:
            shutil.rmtree(reproduced)
        reproduced = cold
    assert reproduced is not None
    return reproduced


def import_floor(clone: Path, env: dict[str, str], figures: Figures) -> Run:
    """Each stage's bare import, one after the other, then one `dvc status`, in a fresh clone."""
    imports = measure_all([stage_import(stage) for stage in STAGES], clone, env)
    status = measure(["dvc", "status"], clone, env)
    figures[FLOOR_STATUS].runs.append(status)
    return Run(imports.seconds + status.seconds, max(imports.peak_rss, status.peak_rss))


def large_rounds(settings: Settings, figures: Figures) -> tuple[Path, int]:
    """Figure 4: `dvc repro -f` at the large size; returns the last clone and its output bytes."""
    env, workdir, step = settings.env, settings.workdir, settings.large_step
    course = [PYTHON, str(COURSE_RUN), "--step", repr(step)]
    course += ["--model-path", str(workdir / "course" / "model.pth")]
    clone: Path | None = None
    for round_number in range(settings.repeat):
        progress(f"{rows_for(step):,} rows, round {round_number + 1} of {settings.repeat}")
        if clone is not None:
            shutil.rmtree(clone)
        clone = fresh_clone(settings, f"large-{round_number}", step)
        sides = [
            (LARGE_REPRO, partial(measure, ["dvc", "repro", "-f"], clone, env)),
            (LARGE_COURSE, partial(measure, course, workdir, env)),
            (LARGE_COURSE_ONE_THREAD, partial(measure, course, workdir, env | ONE_THREAD)),
        ]
        for name, run in alternate(sides, round_number):
            figures[name].runs.append(run())
    assert clone is not None
    written = sum(
        path.stat().st_size
        for folder in OUTPUT_DIRS
        for path in (clone / folder).rglob("*")
        if path.is_file()
    )
    return clone, written


def per_stage_rounds(settings: Settings, clone: Path, figures: Figures) -> None:
    """Figure 5: each stage run on its own in a reproduced clone, and its bare import.

    The train stage also runs with one intra-op thread (OMP_NUM_THREADS=1), to show what
    torch's thread pool costs or saves at this size.
    """
    one_thread = settings.env | ONE_THREAD
    for round_number in range(settings.repeat):
        progress(f"stages one by one in {clone.name}, round {round_number + 1}")
        for stage in STAGES:
            sides = [
                ("run", stage_run(stage), settings.env),
                ("import", stage_import(stage), settings.env),
            ]
            if stage == "train":
                sides.append(("run, 1 thread", stage_run(stage), one_thread))
            for kind, command, env in alternate(sides, round_number):
                figures[stage_key(clone, stage, kind)].runs.append(measure(command, clone, env))


def stage_key(clone: Path, stage: str, kind: str) -> str:
    return f"{clone.name}/{stage}/{kind}"


def import_profiles(clone: Path, env: dict[str, str]) -> dict[str, tuple[ImportProfile, ...]]:
    """Each stage's imports during a real run, and those of its bare import."""
    progress("import profiles (python -X importtime)")
    return {
        stage: (
            import_profile(["-m", f"stages.{stage}"], clone, env),
            import_profile(["-c", f"import stages.{stage}"], clone, env),
        )
        for stage in STAGES
    }


# --- the report -----------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def megabytes(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def lazy_imports(profiles: tuple[ImportProfile, ...]) -> dict[str, float]:
    """Top-level imports of the run that the bare import did not load: imported on first use."""
    run, bare = profiles
    return {name: time for name, time in run.top_level.items() if name not in bare.modules}


def largest(times: dict[str, float], count: int = 3) -> str:
    """The `count` largest entries of at least 10 ms, as `name 1.23`."""
    shown = sorted(times.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {value:.2f}" for name, value in shown if value >= 0.01) or "none"


def machine_lines(settings: Settings) -> list[str]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    threads = subprocess.run(
        [PYTHON, "-c", "import torch; print(torch.get_num_threads())"],
        env=settings.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    versions = ", ".join(
        f"{package} {metadata.version(package)}"
        for package in ("torch", "dvc", "pandas", "pyarrow", "numpy")
    )
    return [
        f"- CPU: {cpu}, {usable} usable cores of {os.cpu_count()}; "
        f"memory {memory / 2**30:.1f} GiB; {platform.platform()}",
        f"- Python {platform.python_version()}, {versions}; torch intra-op threads: {threads}",
        f"- commit {settings.commit[:10]}; {settings.repeat} run(s) of each figure",
    ]


def report(
    settings: Settings,
    figures: Figures,
    small_clone: Path,
    large_clone: Path,
    large_bytes: int,
    profiles: dict[str, tuple[ImportProfile, ...]],
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    started: float,
) -> str:
    large_rows = rows_for(settings.large_step)
    large_label = f"{large_rows:,} rows"

    def stage(clone: Path, name: str, kind: str) -> Figure:
        return figures[stage_key(clone, name, kind)]

    def after_import(clone: Path, name: str) -> float:
        return stage(clone, name, "run").median - stage(clone, name, "import").median

    lazy = {name: lazy_imports(profiles[name]) for name in STAGES}
    lazy_total = sum(sum(times.values()) for times in lazy.values())
    lazy_all: dict[str, float] = defaultdict(float)
    for times in lazy.values():
        for module, value in times.items():
            lazy_all[module] += value
    torch_stages = [name for name in STAGES if "torch" in profiles[name][0].modules]

    cold, course, floor = figures[COLD_REPRO], figures[COURSE], figures[FLOOR]
    stage_walls = sum(stage(small_clone, name, "run").median for name in STAGES)
    stage_imports = sum(stage(small_clone, name, "import").median for name in STAGES)
    stage_work = stage_walls - stage_imports
    dvc_own = cold.median - stage_walls
    large_walls = sum(stage(large_clone, name, "run").median for name in STAGES)
    large_repro, large_course = figures[LARGE_REPRO], figures[LARGE_COURSE]
    largest_stage = max(STAGES, key=lambda name: stage(large_clone, name, "run").peak_rss)
    largest_peak = stage(large_clone, largest_stage, "run").peak_rss

    ratios = {
        "cold": cold.median / course.median,
        "floor": cold.median / floor.median,
        "large": large_repro.median / large_course.median,
    }
    met = {
        "cold": ratios["cold"] <= TARGET_COLD_OVER_COURSE,
        "floor": ratios["floor"] <= TARGET_COLD_OVER_IMPORTS,
        "large": ratios["large"] <= TARGET_LARGE_OVER_COURSE,
        "rss": large_repro.peak_rss <= TARGET_PEAK_RSS,
    }
    notes = {
        "cold": (
            f"{len(torch_stages)} of the 5 stage processes import torch "
            f"({', '.join(torch_stages)}; a bare `import torch` takes "
            f"{seconds(figures[IMPORT_TORCH].median)}), the course's run imports it once. "
            f"Of the cold repro's {seconds(cold.median)}: the stages' bare imports "
            f"{seconds(stage_imports)}, their work after import {seconds(stage_work)} (of which "
            f"imports on first use, by `-X importtime`: {seconds(lazy_total)}: "
            f"{largest(lazy_all)}), DVC's own time ≈ {seconds(dvc_own)}."
        ),
        "floor": (
            f"Beyond the floor the cold repro spends {seconds(cold.median - floor.median)}: "
            f"the stages' work after their bare imports {seconds(stage_work)} (imports on first "
            f"use: {seconds(lazy_total)}) and DVC beyond one `dvc status` ≈ "
            f"{seconds(dvc_own - figures[FLOOR_STATUS].median)} (checking, hashing and caching "
            f"outputs, writing dvc.lock). Counting the imports on first use as imports too, the "
            f"floor would be {seconds(floor.median + lazy_total)} and the ratio "
            f"{cold.median / (floor.median + lazy_total):.2f}."
        ),
        "large": (
            "After import, at "
            + large_label
            + ": "
            + ", ".join(f"{name} {seconds(after_import(large_clone, name))}" for name in STAGES)
            + f"; DVC's own time ≈ {seconds(large_repro.median - large_walls)} "
            f"(it hashes and caches {megabytes(large_bytes)} of outputs). The course's run "
            f"keeps its tensors in memory and writes only the model. With one intra-op thread "
            f"(OMP_NUM_THREADS=1) the train stage takes "
            f"{seconds(stage(large_clone, 'train', 'run, 1 thread').median)} against "
            f"{seconds(stage(large_clone, 'train', 'run').median)} with the default, the "
            f"course's run {seconds(figures[LARGE_COURSE_ONE_THREAD].median)} against "
            f"{seconds(large_course.median)}."
        ),
        "rss": (
            f"Largest process: the {largest_stage} stage, {megabytes(largest_peak)} at "
            f"{large_label}; at 50 rows it peaks at "
            f"{megabytes(stage(small_clone, largest_stage, 'run').peak_rss)} (its imports), so "
            f"≈ {megabytes(largest_peak - stage(small_clone, largest_stage, 'run').peak_rss)} "
            f"is data. The course's run peaks at {megabytes(large_course.peak_rss)}."
        ),
    }

    def verdict(key: str, number: int) -> str:
        return f"yes ({number})" if met[key] else f"**no** ({number})"

    def row(label: str, figure: Figure) -> str:
        return (
            f"| {label} | {seconds(figure.median)} | {figure.spread()} | "
            f"{megabytes(figure.peak_rss)} | | | |"
        )

    lines = [
        "### Results",
        "",
        *machine_lines(settings),
        f"- load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load_after)}; "
        f"the benchmark took {(time.perf_counter() - started) / 60:.1f} min",
        "",
        "| figure | median | runs: fastest to slowest | peak RSS | ratio | target | met? |",
        "|---|---|---|---|---|---|---|",
        row(f"1. {COLD_REPRO}, 50 rows, fresh clone", cold),
        row(f"{COURSE}, 50 rows", course),
        f"| **cold repro ÷ course's run** | | | | {ratios['cold']:.2f} | "
        f"≤ {TARGET_COLD_OVER_COURSE} | {verdict('cold', 1)} |",
        row(f"2. {FLOOR}", floor),
        f"| **cold repro ÷ import floor** | | | | {ratios['floor']:.2f} | "
        f"≤ {TARGET_COLD_OVER_IMPORTS} | {verdict('floor', 2)} |",
        row(f"3. {NOOP_REPRO}", figures[NOOP_REPRO]),
        row(NOOP_STATUS, figures[NOOP_STATUS]),
        row(f"4. {LARGE_REPRO}, {large_label}", large_repro),
        row(f"{COURSE}, {large_label}", large_course),
        row(f"{COURSE}, {large_label}, OMP_NUM_THREADS=1", figures[LARGE_COURSE_ONE_THREAD]),
        f"| **{large_label}: repro ÷ course's run** | | | | {ratios['large']:.2f} | "
        f"≤ {TARGET_LARGE_OVER_COURSE} | {verdict('large', 3)} |",
        f"| **peak RSS, largest process of `dvc repro -f`** | {megabytes(large_repro.peak_rss)} "
        f"| | | | ≤ {megabytes(TARGET_PEAK_RSS)} | {verdict('rss', 4)} |",
        "",
        "Notes (MB = 10⁶ bytes; ratios are ratios of medians):",
        "",
        f"1. {notes['cold']}",
        f"2. {notes['floor']}",
        f"3. {notes['large']}",
        f"4. {notes['rss']}",
        "",
        "#### Where the cold repro's time goes (50 rows)",
        "",
        "| part | seconds |",
        "|---|---|",
        f"| the 5 stages, each run on its own (sum of medians) | {seconds(stage_walls)} |",
        f"| of which their bare imports | {seconds(stage_imports)} |",
        f"| of which their work after import | {seconds(stage_work)} |",
        f"| of which imports on first use (`-X importtime`) | {seconds(lazy_total)} |",
        f"| DVC's own time: cold repro minus the stages | {seconds(dvc_own)} |",
        f"| {FLOOR_STATUS} | {seconds(figures[FLOOR_STATUS].median)} |",
        f"| {IMPORT_TORCH} | {seconds(figures[IMPORT_TORCH].median)} |",
        "",
    ]
    for clone, label in ((small_clone, "50 rows"), (large_clone, large_label)):
        lines += [
            f"#### Stages one by one, {label} (`python -m stages.NAME` in a reproduced clone)",
            "",
            "| stage | wall | bare import | after import | peak RSS |",
            "|---|---|---|---|---|",
        ]
        for name in STAGES:
            run = stage(clone, name, "run")
            lines.append(
                f"| {name} | {seconds(run.median)} | "
                f"{seconds(stage(clone, name, 'import').median)} | "
                f"{seconds(after_import(clone, name))} | {megabytes(run.peak_rss)} |"
            )
        single = stage(clone, "train", "run, 1 thread")
        lines += [
            f"| train, OMP_NUM_THREADS=1 | {seconds(single.median)} | | | "
            f"{megabytes(single.peak_rss)} |",
            "",
        ]
    lines += [
        "#### Imports by stage (`python -X importtime`, one run, seconds; slower than untraced)",
        "",
        "| stage | torch | matplotlib | run: all imports | largest packages (own modules) "
        "| imported on first use |",
        "|---|---|---|---|---|---|",
    ]
    for name in STAGES:
        run_profile = profiles[name][0]
        lines.append(
            f"| {name} | {'yes' if 'torch' in run_profile.modules else 'no'} | "
            f"{'yes' if 'matplotlib' in run_profile.modules else 'no'} | "
            f"{seconds(run_profile.seconds)} | {largest(run_profile.by_package)} | "
            f"{largest(lazy[name])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs of each figure (default 5; 1 with --quick)"
    )
    parser.add_argument(
        "--large-step",
        type=float,
        default=None,
        help=f"data.step of the large run (default {LARGE_STEP:g}; {QUICK_LARGE_STEP:g} "
        "with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 run, 1M rows")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 5)
    large_step = args.large_step or (QUICK_LARGE_STEP if args.quick else LARGE_STEP)
    if repeat < 1:
        parser.error("--repeat must be at least 1")

    commit = git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no"):
        progress(f"note: uncommitted changes are not benchmarked; this measures {commit[:10]}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as workdir:
        workdir_path = Path(workdir)
        settings = Settings(repeat, large_step, workdir_path, commit, tool_env(workdir_path))
        figures: Figures = defaultdict(Figure)
        try:
            small_clone = course_sized_rounds(settings, figures)
            per_stage_rounds(settings, small_clone, figures)
            profiles = import_profiles(small_clone, settings.env)
            large_clone, large_bytes = large_rounds(settings, figures)
            per_stage_rounds(settings, large_clone, figures)
        except (BenchmarkError, subprocess.CalledProcessError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(
            report(
                settings,
                figures,
                small_clone,
                large_clone,
                large_bytes,
                profiles,
                load_before,
                os.getloadavg(),
                started,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
