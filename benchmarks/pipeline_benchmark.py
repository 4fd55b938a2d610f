"""Time the pipeline against the course's one-process script and against itself; write the results.

    python benchmarks/pipeline_benchmark.py            # what `make benchmark` runs
    python benchmarks/pipeline_benchmark.py --quick    # 1M and 10M rows instead of 10M and 100M

Every run happens in a fresh `git clone` of HEAD in a temporary folder (no DVC cache), with this
environment first on PATH. The two sides of a comparison run alternately, in reversed order every
other round, so a machine that gets busier weighs on both; figures are medians and ratios are
ratios of medians. Peak memory is that of the largest process a command starts. Writes
docs/benchmark.md (with the commit measured) and prints it; the exit status does not depend on
the targets: this measures, it does not gate.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[1]
COURSE = Path(__file__).resolve().with_name("course_first_run.py")
OUTPUT = REPO / "docs/benchmark.md"
STAGES = ("prepare", "split", "train", "evaluate", "export")
# The in-memory pipeline the streamed one replaced (the last commit before it).
IN_MEMORY = "96660cc"
# The train stage at two epoch counts: the difference is the time of the epochs alone, and
# far enough apart that the start-up's jitter (a few tenths of a second) moves it little.
FEW_EPOCHS, MANY_EPOCHS = EPOCH_COUNTS = (20, 300)
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux


class Run(NamedTuple):
    """One timed command."""

    seconds: float
    peak: int  # resident bytes of its largest process
    kernel: float  # CPU seconds its processes spent in the kernel (page faults, file I/O)


def timed(command: list[str], cwd: Path, env: dict | None = None) -> Run:
    """Seconds, peak memory and kernel time of one command (in a child shell, so earlier,
    larger processes of this one do not count).

    The files that earlier commands wrote are flushed to disk first, so that no command runs
    while the kernel writes back another's files.
    """
    os.sync()
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "used = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(time.perf_counter() - start, used.ru_maxrss, used.ru_stime)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, peak, kernel = done.stdout.split()
    return Run(float(seconds), int(peak) * RSS_UNIT, float(kernel))


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def commit() -> str:
    """The short id of the commit the figures measure."""
    shown = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(shown, cwd=REPO, capture_output=True, text=True).stdout.strip()


# (train.processes, threads): the default, one process on one thread, two on one thread each.
TRAIN_LAYOUTS = ((1, 2), (1, 1), (2, 2))


def train_label(processes: int, threads: int, epochs: int) -> str:
    each = max(1, threads // processes)
    return f"{processes} process(es) of {each} thread(s), {epochs} epochs"


def clone(into: Path, revision: str = "HEAD", **params) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(into)], check=True)
    subprocess.run(["git", "checkout", "-q", revision], cwd=into, check=True)
    path = into / "params.yaml"
    values = yaml.safe_load(path.read_text())
    for dotted, value in params.items():
        section, _, key = dotted.partition("__")
        if key:
            values[section][key] = value
        else:
            values[section] = value
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return into


def alternate(sides: dict[str, callable], rounds: int) -> dict[str, list]:
    results: dict[str, list] = {name: [] for name in sides}
    for index in range(rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            results[name].append(sides[name]())
            print(f"  {name}: {round_total(results[name][-1]).seconds:.2f} s", file=sys.stderr)
    return results


def write_section(doc: Path, marker: str, lines: list[str]) -> None:
    """Replace what lies between `marker` and the next `<!-- end -->` in `doc` with `lines`."""
    end = "<!-- end -->"
    text = doc.read_text()
    pattern = re.compile(re.escape(marker) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{doc.name} has no {marker} ... {end} section")
    doc.write_text(pattern.sub(lambda _: "\n".join([marker, *lines, end]), text))


def median(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def peak(runs: list[Run]) -> int:
    return max(run.peak for run in runs)


def cold_repro(workdir: Path, name: str, revision: str = "HEAD", **params) -> callable:
    counter = iter(range(1000))

    def measure() -> Run:
        repo = clone(workdir / f"{name}-{next(counter)}", revision, **params)
        return timed(["dvc", "repro", "--quiet"], repo)

    return measure


def course_run(workdir: Path, *args: str) -> callable:
    return lambda: timed(
        [sys.executable, str(COURSE), *args, "--model-path", str(workdir / "m.pth")], workdir
    )


def stages_one_by_one(repo: Path) -> dict[str, Run]:
    """Each stage by itself, as `dvc repro --single-item` runs it: seconds, peak memory and
    kernel time."""
    return {
        stage: timed(["dvc", "repro", "--single-item", "--force", stage], repo) for stage in STAGES
    }


def round_total(run: Run | dict[str, Run]) -> Run:
    """One round as one command: a command's run, or the stages one by one together (their
    seconds and kernel time added, their largest peak)."""
    if isinstance(run, Run):
        return run
    stages = run.values()
    return Run(
        sum(stage.seconds for stage in stages),
        max(stage.peak for stage in stages),
        sum(stage.kernel for stage in stages),
    )


def stage_medians(runs: list[dict[str, Run]]) -> dict[str, tuple[float, int]]:
    """Each stage's median seconds over runs of `stages_one_by_one`, and its largest peak."""
    return {
        stage: (
            statistics.median(run[stage].seconds for run in runs),
            max(run[stage].peak for run in runs),
        )
        for stage in STAGES
    }


def disk_use(repo: Path) -> dict[str, int]:
    """Bytes of the outputs in the workspace and of DVC's cache (`du` counts a file that is
    linked into both once), with the repository's `cache.type`."""

    def du(*args: str) -> int:
        done = subprocess.run(["du", "-sb", *args], capture_output=True, text=True, check=True)
        return int(done.stdout.split()[0])

    both = du("--exclude=.git", str(repo))
    cache = du(str(repo / ".dvc/cache"))
    return {"workspace": both - cache, "cache": cache, "both": both}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M and 10M rows, one round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    large, huge = ("1e-6", "1e-6") if args.quick else ("1e-7", "1e-7")
    huge_end = 10.0
    large_rows = round(1 / float(large))
    huge_rows = round(huge_end / float(huge))
    measured = commit()
    lines: list[str] = []
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        work = Path(tmp)
        print("1. the course's 50 rows", file=sys.stderr)
        small = alternate(
            {
                "repro": cold_repro(work, "small"),
                "before": cold_repro(work, "small-before", IN_MEMORY),
                "course": course_run(work),
            },
            rounds,
        )
        print(f"2. {large_rows:,} rows", file=sys.stderr)
        big = alternate(
            {
                "streamed": cold_repro(work, "streamed", data__step=float(large)),
                "in-memory": cold_repro(work, "memory", IN_MEMORY, data__step=float(large)),
                "course": course_run(work, "--step", large),
            },
            rounds,
        )
        print(f"3. two processes against one, {large_rows:,} rows", file=sys.stderr)
        repo = clone(work / "processes", data__step=float(large))
        subprocess.run(
            ["dvc", "repro", "--quiet", "split"], cwd=repo, env=environment(), check=True
        )

        def train_with(processes: int, threads: int, epochs: int) -> callable:
            def measure():
                values = yaml.safe_load((repo / "params.yaml").read_text())
                values["threads"] = threads
                values["train"].update(processes=processes, epochs=epochs)
                (repo / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
                return timed([sys.executable, "-m", "stages.train"], repo)

            return measure

        # Two epoch counts tell the time per epoch from the fixed start-up and shut-down.
        processes = alternate(
            {
                train_label(n, threads, epochs): train_with(n, threads, epochs)
                for n, threads in TRAIN_LAYOUTS
                for epochs in (FEW_EPOCHS, MANY_EPOCHS)
            },
            rounds,
        )
        print(f"4. {huge_rows:,} rows, 3 epochs; the same stages at 50 rows", file=sys.stderr)
        small_repo = clone(work / "small-stages", train__epochs=3)
        repo = clone(work / "huge", data__step=float(huge), data__end=huge_end, train__epochs=3)
        huge_runs = alternate(
            {
                "stages at 50 rows": lambda: stages_one_by_one(small_repo),
                "stages": lambda: stages_one_by_one(repo),
                "course": course_run(work, "--step", huge, "--end", str(huge_end), "--epochs", "3"),
            },
            rounds,
        )
        small_stages, huge_stages = (
            stage_medians(huge_runs[n]) for n in ("stages at 50 rows", "stages")
        )
        huge_course = (median(huge_runs["course"]), peak(huge_runs["course"]))
        disk = disk_use(repo)

    total = sum(seconds for seconds, _ in huge_stages.values())
    quick = " --quick" if args.quick else ""
    lines += [
        "# Benchmark",
        "",
        f"Written by `benchmarks/pipeline_benchmark.py{quick}` at commit "
        f"{measured}, {rounds} round(s), in {(time.monotonic() - started) / 60:.1f} minutes.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{platform.platform()}; Python {platform.python_version()}. Load average before the "
        f"last figure: {', '.join(f'{v:.2f}' for v in os.getloadavg())}.",
        "Figures are medians; ratios are ratios of medians; memory is the peak of the largest "
        "process (MB = 10^6 bytes).",
        "",
        "| figure | seconds | peak MB | ratio | target | met? |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, runs, ratio="", target="", met=""):
        lines.append(
            f"| {name} | {median(runs):.2f} | {peak(runs) / 1e6:,.0f} "
            f"| {ratio} | {target} | {met} |"
        )

    row("cold `dvc repro`, 50 rows, fresh clone", small["repro"])
    row(f"cold `dvc repro`, 50 rows, before streaming ({IN_MEMORY})", small["before"])
    row("the course's script in one process, 50 rows", small["course"])
    r = median(small["repro"]) / median(small["before"])
    lines.append(
        f"| **cold repro / before** | | | {r:.2f} | <= 1 | {'yes' if r <= 1 else '**no**'} |"
    )
    r = median(small["repro"]) / median(small["course"])
    lines.append(f"| **cold repro / course's script** | | | {r:.2f} | | |")

    def marginal(rows: int, epochs: int, pipeline: float, at_50_rows: float, script: float) -> None:
        """What the rows cost in the pipeline over what they cost in the course's script: each
        side's time less its time on the course's 50 rows (their epochs cost milliseconds)."""
        r = (pipeline - at_50_rows) / (script - median(small["course"]))
        lines.append(
            f"| **marginal cost of the rows, {rows:,} rows, {epochs} epochs: (pipeline - "
            f"pipeline at 50 rows) / (script - script at 50 rows)** | | | {r:.2f} | <= 2 "
            f"| {'yes' if r <= 2 else '**no**'} |"
        )

    row(f"cold `dvc repro`, {large_rows:,} rows, streamed", big["streamed"])
    row(f"cold `dvc repro`, {large_rows:,} rows, in memory ({IN_MEMORY})", big["in-memory"])
    row(f"the course's script, {large_rows:,} rows", big["course"])
    r = median(big["streamed"]) / median(big["in-memory"])
    lines.append(
        f"| **streamed / in memory** | | | {r:.2f} | <= 1.2 | {'yes' if r <= 1.2 else '**no**'} |"
    )
    # The epochs of a `dvc repro` of the commit measured (the clones are of HEAD).
    committed = subprocess.run(
        ["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True, check=True
    )
    marginal(
        large_rows,
        yaml.safe_load(committed.stdout)["train"]["epochs"],
        median(big["streamed"]),
        median(small["repro"]),
        median(big["course"]),
    )
    one, _, two = (processes[train_label(n, t, MANY_EPOCHS)] for n, t in TRAIN_LAYOUTS)
    row(f"train stage, 1 process, {large_rows:,} rows, {MANY_EPOCHS} epochs", one)
    row(f"train stage, 2 processes, {large_rows:,} rows, {MANY_EPOCHS} epochs", two)
    lines.append(
        f"| **1 process / 2 processes, the whole train stage** | | | "
        f"{median(one) / median(two):.2f} | | |"
    )
    per_epoch = {}
    for n, threads in TRAIN_LAYOUTS:
        label = train_label(n, threads, MANY_EPOCHS).rsplit(",", 1)[0]
        few, many = (median(processes[train_label(n, threads, e)]) for e in EPOCH_COUNTS)
        per_epoch[n, threads] = (many - few) / (MANY_EPOCHS - FEW_EPOCHS)
        fixed = many - MANY_EPOCHS * per_epoch[n, threads]
        lines.append(
            f"| train stage, {label}: per epoch (from {FEW_EPOCHS} and {MANY_EPOCHS} "
            f"epochs); start-up and shut-down | {per_epoch[n, threads]:.3f}; {fixed:.2f} | | | | |"
        )
    # More processes against one, each on one thread: what DDP adds; against one process on
    # both cores: what it adds over torch's threads on the same cores.
    r = per_epoch[1, 1] / per_epoch[2, 2]
    lines.append(
        f"| **2 processes of 1 thread / 1 process of 1 thread, per epoch** | | | {r:.2f} "
        f"| >= 1.6 | {'yes' if r >= 1.6 else '**no**'} |"
    )
    r = per_epoch[1, 2] / per_epoch[2, 2]
    lines.append(
        f"| **2 processes of 1 thread / 1 process of 2 threads (`threads: 2`), per epoch** "
        f"| | | {r:.2f} | | |"
    )
    # Each stage's share of the marginal cost: its seconds less its seconds at 50 rows, over
    # the script's seconds less the script's at 50 rows.
    script_rows = huge_course[0] - median(small["course"])
    for stage, (seconds, rss) in huge_stages.items():
        ok = rss <= 1e9
        at_50 = small_stages[stage][0]
        share = (seconds - at_50) / script_rows
        lines.append(
            f"| {stage}, {huge_rows:,} rows (50 rows: {at_50:.2f} s; ratio: its rows' seconds / "
            f"the script's) | {seconds:.2f} | {rss / 1e6:,.0f} | {share:.2f} | <= 1,000 MB "
            f"| {'yes' if ok else '**no**'} |"
        )
    # The rounds' spread, and the kernel's share: the script's time at 100M rows is largely the
    # kernel's, giving it 2.8 GB of fresh memory, at a cost that depends on the machine.
    totals = {name: [round_total(run) for run in runs] for name, runs in huge_runs.items()}
    fastest = {name: min(run.seconds for run in runs) for name, runs in totals.items()}
    slowest = {name: max(run.seconds for run in runs) for name, runs in totals.items()}
    kernel = {name: statistics.median(run.kernel for run in runs) for name, runs in totals.items()}

    def rounds_of(name: str) -> str:
        return (
            f"rounds: {fastest[name]:.2f} to {slowest[name]:.2f} s; "
            f"kernel CPU: {kernel[name]:.2f} s"
        )

    lines.append(
        f"| the course's script, {huge_rows:,} rows, 3 epochs ({rounds_of('course')}) "
        f"| {huge_course[0]:.2f} | {huge_course[1] / 1e6:,.0f} | | | |"
    )
    r = total / huge_course[0]
    lines.append(
        f"| **the five stages / course's script** ({rounds_of('stages')}) | {total:.2f} | "
        f"| {r:.2f} | | |"
    )
    # The same five `dvc repro --single-item` runs at 50 rows: five DVC start-ups on each side.
    at_50_rows = sum(seconds for seconds, _ in small_stages.values())
    lines.append(
        f"| the five stages one by one, 50 rows, 3 epochs ({rounds_of('stages at 50 rows')}) "
        f"| {at_50_rows:.2f} | | | | |"
    )
    marginal(huge_rows, 3, total, at_50_rows, huge_course[0])
    r = (fastest["stages"] - fastest["stages at 50 rows"]) / (
        fastest["course"] - min(run.seconds for run in small["course"])
    )
    lines.append(f"| **the same from each side's fastest round** | | | {r:.2f} | | |")
    config = (REPO / ".dvc/config").read_text()
    configured = re.search(r'^\s*type\s*=\s*"?([^"\n]+)"?', config, re.M)
    cache_type = configured.group(1) if configured else "DVC's default"
    lines.append(
        f"| disk after the {huge_rows:,}-row stages (`cache.type = {cache_type}`): workspace "
        f"{disk['workspace'] / 1e6:,.0f} MB, DVC cache {disk['cache'] / 1e6:,.0f} MB, together "
        f"{disk['both'] / 1e6:,.0f} MB (a linked file counted once) | | | | | |"
    )
    text = "\n".join(lines) + "\n"
    OUTPUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
