"""Does DVC's queue with -j 2 beat running the same experiments one after another, and why (not)?

    python benchmarks/queue_vs_sequential.py                # 4 experiments, -j 2, 3 rounds
    python benchmarks/queue_vs_sequential.py --rounds 5 --json results.json

Works in a temporary clone of this repository's HEAD (the working tree is untouched), after one
`dvc repro` there. Each round runs an N/2 x 2 grid (train.lr x train.epochs) with learning rates
no earlier run used, so neither dvc.lock nor the run cache skips a stage, and times:

  sequential        `dvc exp run -S ...` for each experiment, one after another, in the workspace
  queue             `dvc exp run --queue` (the sweep), then `dvc exp run --run-all -j J`
  queue, 1 thread   the same with OMP_NUM_THREADS=1: one torch intra-op thread per stage
  no-op             N experiments that change nothing, so that no stage runs: DVC's own cost
                    of an experiment, in the workspace and in the queue
  stages            the stage commands alone (train, evaluate, export), no DVC, one after another
  stages, J lanes   the same commands as J parallel lanes in separate copies: the best any
                    queue could do on this machine right now (and again with 1 torch thread)

and prints each one's median, the speedup of the queue over sequential runs, and where the
queue's time goes. Timings on a machine shared with other work are noisy: compare medians.
"""

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
# What an experiment that changes train params reruns (prepare and split are unchanged).
STAGES = ("train", "evaluate", "export")
EPOCHS = (100, 300)


class Clone:
    """A git clone of HEAD where the benchmark runs commands, their output kept in a log."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root, self.log = root, log

    def run(self, *args: str, env: dict[str, str] | None = None) -> float:
        """Run a command to completion; return its wall time in seconds."""
        started = time.perf_counter()
        with open(self.log, "a") as log:
            log.write(f"\n$ {' '.join(args)}\n")
            log.flush()
            result = subprocess.run(
                args, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            tail = self.log.read_text().splitlines()[-20:]
            sys.exit(f"`{' '.join(args)}` failed in {self.root}:\n" + "\n".join(tail))
        return elapsed

    def reset(self) -> None:
        """Back to the commit: workspace, experiments and queue, and no worker left."""
        self.run("git", "checkout", "-q", "--", ".")
        self.run("dvc", "checkout", "-q", "--force")
        self.run("dvc", "exp", "remove", "-q", "--all-commits")
        self.run("dvc", "queue", "remove", "-q", "--all")
        self.stop_workers()

    def stop_workers(self) -> None:
        """End the idle queue workers by process id, as `make experiments` does.

        Not with `dvc queue stop`: a stop request that finds no running worker stays in the
        queue and ends the next workers after one experiment each (see
        pytorch_workflow/experiments.py), which would strand the next round's queue.
        """
        processes = self.processes()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if "queue-worker" in process.cmdline():
                    process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=30)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    def processes(self) -> list[psutil.Process]:
        root = str(self.root.resolve())
        return [
            process
            for process in psutil.process_iter(["cwd"])
            if process.pid != os.getpid()
            and ((process.info.get("cwd") or "") + os.sep).startswith(root + os.sep)
        ]


def make_clone(workdir: Path) -> Clone:
    root = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(root)], check=True)
    for key, value in (("user.name", "Benchmark"), ("user.email", "benchmark@example.invalid")):
        # Experiments are git commits: CI machines have no identity of their own.
        if subprocess.run(["git", "config", key], cwd=root, capture_output=True).returncode:
            subprocess.run(["git", "config", key, value], cwd=root, check=True)
    clone = Clone(root, workdir / "commands.log")
    clone.run("dvc", "repro", "--quiet")
    return clone


def grid(learning_rates: list[float]) -> list[dict[str, float]]:
    return [
        {"train.lr": lr, "train.epochs": epochs}
        for lr, epochs in itertools.product(learning_rates, EPOCHS)
    ]


def set_args(params: dict[str, float]) -> list[str]:
    return [arg for name, value in params.items() for arg in ("-S", f"{name}={value}")]


def one_thread() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def sequential(clone: Clone, experiments: list[dict]) -> float:
    return sum(clone.run("dvc", "exp", "run", *set_args(params)) for params in experiments)


def queued(clone: Clone, experiments: list[dict], jobs: int, env=None) -> tuple[float, float]:
    """(seconds to queue the sweep, seconds for --run-all to run it)."""
    learning_rates = sorted({params["train.lr"] for params in experiments})
    sweep = [
        *("-S", "train.lr=" + ",".join(map(str, learning_rates))),
        *("-S", "train.epochs=" + ",".join(map(str, EPOCHS))),
    ]
    queueing = clone.run("dvc", "exp", "run", "--queue", *sweep)
    running = clone.run("dvc", "exp", "run", "--run-all", "--jobs", str(jobs), env=env)
    clone.stop_workers()
    return queueing, running


def lanes(clone: Clone, experiments: list[dict], jobs: int, env=None) -> float:
    """The stage commands alone, `jobs` lanes at a time, each lane in its own copy."""
    copies = []
    for lane in range(jobs):
        copy = clone.root.parent / f"lane-{lane}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(clone.root, copy, ignore=shutil.ignore_patterns(".git", "tmp", "cache"))
        copies.append(copy)
    scripts = []
    for lane, copy in enumerate(copies):
        steps = []
        for params in experiments[lane::jobs]:
            steps.append(f"{sys.executable} -c {_set_params_script(params)!r}")
            steps += [f"{sys.executable} -m stages.{stage}" for stage in STAGES]
        scripts.append((copy, " && ".join(steps) + " >/dev/null"))
    started = time.perf_counter()
    running = [subprocess.Popen(["sh", "-c", s], cwd=cwd, env=env) for cwd, s in scripts]
    if any(process.wait() for process in running):
        sys.exit("a stage failed while timing the stages alone")
    return time.perf_counter() - started


def _set_params_script(params: dict[str, float]) -> str:
    train = {name.split(".", 1)[1]: value for name, value in params.items()}
    return (
        "import yaml; p = yaml.safe_load(open('params.yaml')); "
        f"p['train'].update({train!r}); yaml.safe_dump(p, open('params.yaml', 'w'))"
    )


def one_round(clone: Clone, jobs: int, sets: dict[str, list[dict]]) -> dict[str, float]:
    timings: dict[str, float] = {}

    def step(label: str) -> None:
        print(f"  {label} ...", flush=True)

    step("sequential")
    timings["sequential"] = sequential(clone, sets["sequential"])
    clone.reset()
    for name, experiments, env in (
        ("queue", sets["queue"], None),
        ("queue_1_thread", sets["queue_1_thread"], one_thread()),
    ):
        step(name)
        enqueue, run_all = queued(clone, experiments, jobs, env)
        timings.update({name: enqueue + run_all, f"{name}_enqueue": enqueue})
        clone.reset()
    # Experiments that change nothing: every stage is up to date, so all the time is DVC's.
    # (The run cache cannot stand in: train and evaluate have uncached outputs, so they rerun.)
    count = len(sets["queue"])
    step("sequential_noop")
    timings["sequential_noop"] = sum(
        clone.run("dvc", "exp", "run", "--name", f"noop-{uuid.uuid4().hex[:8]}")
        for _ in range(count)
    )
    clone.reset()
    step("queue_noop")
    for _ in range(count):
        clone.run("dvc", "exp", "run", "--queue", "--name", f"noop-{uuid.uuid4().hex[:8]}")
    timings["queue_noop"] = clone.run("dvc", "exp", "run", "--run-all", "--jobs", str(jobs))
    clone.stop_workers()
    clone.reset()
    step("stages")
    timings["stages"] = lanes(clone, sets["queue"], 1)
    step("stages_lanes")
    timings["stages_lanes"] = lanes(clone, sets["queue"], jobs)
    step("stages_lanes_1_thread")
    timings["stages_lanes_1_thread"] = lanes(clone, sets["queue"], jobs, one_thread())
    return timings


def measure(args: argparse.Namespace, clone: Clone) -> list[dict[str, float]]:
    rounds = []
    # Learning rates no run has used: every stage from train on really runs.
    fresh_lr = (round(0.01 + step * 1e-4, 6) for step in itertools.count(1))
    per_epochs = args.experiments // len(EPOCHS)
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}", flush=True)
        load_before = os.getloadavg()[0]
        sets = {
            name: grid([next(fresh_lr) for _ in range(per_epochs)])
            for name in ("sequential", "queue", "queue_1_thread")
        }
        timings = one_round(clone, args.jobs, sets)
        timings["load_average"] = (load_before + os.getloadavg()[0]) / 2
        rounds.append(timings)
        print("  " + ", ".join(f"{key} {value:.1f}" for key, value in timings.items()))
    return rounds


def summarize(rounds: list[dict[str, float]], experiments: int, jobs: int) -> str:
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    n = experiments
    lines = [
        f"{n} experiments, -j {jobs}, {len(rounds)} round(s), {os.cpu_count()} cores, load "
        f"average {median['load_average']:.2f} during the runs (other work on the machine):",
        "",
        "| measurement | median s | per experiment s | each round s |",
        "|---|---|---|---|",
    ]
    for key in median:
        if key != "load_average":
            values = ", ".join(f"{r[key]:.1f}" for r in rounds)
            lines.append(f"| {key} | {median[key]:.1f} | {median[key] / n:.1f} | {values} |")
    work = median["stages"] / n
    lanes_speedup = median["stages"] / median["stages_lanes"]
    dvc_workspace = median["sequential_noop"] / n
    dvc_queue = median["queue_noop"] * jobs / n
    overhead = median["queue"] - median["stages_lanes"]
    # What the same costs give where `jobs` cores are free for these experiments alone.
    queue_at_best = n * (work + dvc_queue) / jobs + median["queue_enqueue"]
    best_case = n * (work + dvc_workspace) / queue_at_best
    lines += [
        "",
        f"Queue -j {jobs} against sequential: {median['sequential'] / median['queue']:.2f}x "
        "as fast (target 1.5x).",
        f"- Stage work (train, evaluate, export without DVC): {work:.1f} s an experiment; run as "
        f"{jobs} parallel lanes it goes {lanes_speedup:.2f}x as fast (the most the CPUs give now).",
        f"- DVC's own cost of an experiment: {dvc_workspace:.1f} s in the workspace, "
        f"{dvc_queue:.1f} s of a worker's time in the queue (temporary copy, git refs, celery).",
        f"- The queue took {overhead:.1f} s ({overhead / median['queue']:.0%}) longer than the "
        f"bare stages in {jobs} lanes; queueing the sweep itself took "
        f"{median['queue_enqueue']:.1f} s.",
        f"- One torch intra-op thread per process instead of the default "
        f"({_default_threads()}): queue {median['queue_1_thread'] - median['queue']:+.1f} s, "
        f"bare lanes {median['stages_lanes_1_thread'] - median['stages_lanes']:+.1f} s.",
        f"On {jobs} free cores these costs give at most {best_case:.2f}x (stage work and DVC's "
        "cost per experiment, run perfectly in parallel).",
    ]
    return "\n".join(lines)


def _default_threads() -> str:
    probe = "import torch; print(torch.get_num_threads())"
    threads = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return f"{threads.stdout.strip()} threads"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=4, help="an even number")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every timing here")
    args = parser.parse_args()
    if args.experiments < 2 or args.experiments % len(EPOCHS):
        parser.error(f"--experiments must be a positive multiple of {len(EPOCHS)}")
    with tempfile.TemporaryDirectory(prefix="queue-benchmark-") as workdir:
        clone = make_clone(Path(workdir))
        try:
            rounds = measure(args, clone)
        finally:
            clone.stop_workers()
    summary = summarize(rounds, args.experiments, args.jobs)
    print("\n" + summary)
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
