"""What copying outputs into DVC's cache costs against hard-linking them: disk and time.

    python benchmarks/cache_links.py                  # 10 million rows, 3 epochs, 3 rounds
    python benchmarks/cache_links.py --step 1e-6      # 1 million rows

Each round runs a cold `dvc repro` in a fresh `git clone` of HEAD (no DVC cache) with
`cache.type` set in its .dvc/config.local and this environment first on PATH, then deletes every
cached output and times the `dvc checkout` that brings them back. The two link types run
alternately, in reversed order every other round, so a machine that gets busier weighs on both;
seconds are medians. Disk is `du` of the clone without .git (workspace and .dvc/cache in one
count, so a hard-linked file counts once). Prints a Markdown table for docs/scale.md.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LINK_TYPES = ("reflink,copy", "hardlink")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def clone(into: Path, link_type: str, step: float, epochs: int) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(into)], check=True)
    path = into / "params.yaml"
    values = yaml.safe_load(path.read_text())
    values["data"]["step"] = step
    values["train"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    configure = ["dvc", "config", "--local", "cache.type", link_type]
    subprocess.run(configure, cwd=into, env=environment(), check=True)
    return into


def disk_bytes(*paths: Path) -> int:
    """Bytes on disk of all `paths` together; du counts a file with several links once."""
    shown = subprocess.run(
        ["du", "-s", "-c", "-B1", "--exclude=.git", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(shown.splitlines()[-1].split()[0])


def cached_outputs(repo: Path) -> list[Path]:
    """The outputs in dvc.lock whose bytes are in the cache (not metrics and plots)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = [out for stage in lock["stages"].values() for out in stage["outs"]]
    cache = repo / ".dvc/cache/files/md5"
    return [
        repo / out["path"] for out in outs if (cache / out["md5"][:2] / out["md5"][2:]).exists()
    ]


def seconds_of(command: list[str], repo: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=repo, env=environment(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(repo: Path) -> tuple[float, float, int, int]:
    """Seconds of a cold `dvc repro` and bytes of the clone and of its cache after it, then
    seconds of a `dvc checkout` of every cached output (deleted first, as switching between
    commits or experiments replaces them)."""
    repro = seconds_of(["dvc", "repro", "--quiet"], repo)
    total, cache = disk_bytes(repo), disk_bytes(repo / ".dvc/cache")
    for path in cached_outputs(repo):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    checkout = seconds_of(["dvc", "checkout", "--quiet"], repo)
    return repro, checkout, total, cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=1e-7, help="data.step (1e-7: 10M rows)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = round(1 / args.step)
    runs: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in LINK_TYPES}
    with tempfile.TemporaryDirectory(prefix="cache-links-") as tmp:
        for index in range(args.rounds):
            order = LINK_TYPES if index % 2 == 0 else tuple(reversed(LINK_TYPES))
            for link_type in order:
                repo = clone(Path(tmp) / f"{index}-{link_type}", link_type, args.step, args.epochs)
                runs[link_type].append(measure(repo))
                print(f"  {link_type}: {runs[link_type][-1][0]:.2f} s", file=sys.stderr)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"{rows:,} rows, {args.epochs} epochs, {args.rounds} round(s), commit {commit}; "
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}; load average "
        f"after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}.\n"
    )
    print(
        "| cache.type | cold `dvc repro`, s | `dvc checkout` of every output, s "
        "| workspace + cache, MB | cache, MB |"
    )
    print("|---|---|---|---|---|")
    for link_type, measured in runs.items():
        repro, checkout = (statistics.median(run[index] for run in measured) for index in (0, 1))
        total, cache = measured[-1][2:]  # the same bytes every round
        print(
            f"| `{link_type}` | {repro:.2f} | {checkout:.2f} | {total / 1e6:,.0f} "
            f"| {cache / 1e6:,.0f} |"
        )


if __name__ == "__main__":
    main()
