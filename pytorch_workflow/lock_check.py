"""Is what the commit records what `dvc repro` makes? Run it after `dvc repro` in a clean checkout.

    dvc repro && python -m pytorch_workflow.lock_check      # what `make lock-check` runs

The pipeline writes identical bytes for identical inputs, so on a fresh clone `dvc repro` must
leave every committed file as it was. Anything it changed (dvc.lock, metrics/, plots/, ...) means
the commit is stale: someone changed a param or the code without rerunning the pipeline, or
edited an output by hand. Exits 1 and names each stage and what changed in it.
No stage imports this module.
"""

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pytorch_workflow.errors import UserError, exit_on_user_error

LOCK_FILE = "dvc.lock"
EXIT_STALE = 1
NO_STAGE = "(no stage)"


def committed_lock(revision: str = "HEAD") -> dict[str, Any]:
    shown = subprocess.run(
        ["git", "show", f"{revision}:{LOCK_FILE}"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        return {}  # nothing committed yet: every stage is new
    return yaml.safe_load(shown.stdout) or {}


def workspace_lock() -> dict[str, Any]:
    try:
        return yaml.safe_load(Path(LOCK_FILE).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{LOCK_FILE} not found: run `dvc repro` first") from None


def changed_files() -> list[str]:
    """Files that differ from the commit, new files included (ignored ones are not)."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--untracked-files=all"],
        capture_output=True,
        text=True,
    )
    if status.returncode != 0:
        raise UserError(f"git status failed: {status.stderr.strip()}")
    # Each entry is "XY path"; a rename's old path follows as the next entry, without XY.
    entries = status.stdout.split("\0")
    paths, skip_next = [], False
    for entry in filter(None, entries):
        if skip_next:
            skip_next = False
            continue
        paths.append(entry[3:])
        skip_next = entry[0] in "RC"
    return paths


def stage_changes(old_lock: dict[str, Any], new_lock: dict[str, Any]) -> dict[str, list[str]]:
    """For each stage whose dvc.lock entry differs, in pipeline order: what differs, in words."""
    old_stages = old_lock.get("stages") or {}
    new_stages = new_lock.get("stages") or {}
    changes: dict[str, list[str]] = {}
    for stage in [*new_stages, *(name for name in old_stages if name not in new_stages)]:
        if stage not in old_stages:
            changes[stage] = ["not in the committed dvc.lock"]
            continue
        if stage not in new_stages:
            changes[stage] = ["in the committed dvc.lock but no longer in the pipeline"]
            continue
        old, new = old_stages[stage], new_stages[stage]
        reasons = ["cmd changed"] if old.get("cmd") != new.get("cmd") else []
        reasons += _param_changes(old.get("params") or {}, new.get("params") or {})
        for kind in ("deps", "outs"):
            changed = _changed_paths(old.get(kind) or [], new.get(kind) or [])
            if changed:
                reasons.append(f"{kind} changed: {', '.join(changed)}")
        if reasons:
            changes[stage] = reasons
    return changes


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`params.yaml train.epochs: 100 -> 300` for each param whose recorded value differs."""
    reasons = []
    for file in [*new, *(name for name in old if name not in new)]:
        old_flat, new_flat = _flatten(old.get(file) or {}), _flatten(new.get(file) or {})
        reasons += [
            f"{file} {name}: {old_flat.get(name, '(none)')} -> {new_flat.get(name, '(none)')}"
            for name in sorted(set(old_flat) | set(new_flat))
            if old_flat.get(name) != new_flat.get(name)
        ]
    return reasons


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _changed_paths(old: list[dict], new: list[dict]) -> list[str]:
    """Paths added, removed or with another hash or size."""
    old_by_path = {entry["path"]: entry for entry in old}
    new_by_path = {entry["path"]: entry for entry in new}
    return [
        path
        for path in [*new_by_path, *(name for name in old_by_path if name not in new_by_path)]
        if old_by_path.get(path) != new_by_path.get(path)
    ]


def owning_stage(path: str, lock: dict[str, Any]) -> str | None:
    """The stage that writes `path` (a file, or a file inside an output folder)."""
    for stage, entry in (lock.get("stages") or {}).items():
        for out in entry.get("outs") or []:
            if path == out["path"] or path.startswith(out["path"].rstrip("/") + "/"):
                return stage
    return None


def stale_report(old_lock: dict, new_lock: dict, files: list[str]) -> dict[str, list[str]]:
    """Every stale stage with its reasons; files that no stage writes come last."""
    report = stage_changes(old_lock, new_lock)
    by_stage: dict[str, list[str]] = {}
    for path in files:
        if path != LOCK_FILE:  # dvc.lock itself is described stage by stage above
            by_stage.setdefault(owning_stage(path, new_lock) or NO_STAGE, []).append(path)
    for stage, paths in by_stage.items():
        report.setdefault(stage, []).append(f"differs from the commit: {', '.join(paths)}")
    # Pipeline order, then stages only the commit knows, then files no stage writes.
    order = [*(new_lock.get("stages") or {}), *report]
    return {stage: report[stage] for stage in sorted(report, key=_rank(order))}


def _rank(order: list[str]):
    return lambda stage: (stage == NO_STAGE, order.index(stage))


@exit_on_user_error
def main() -> None:
    report = stale_report(committed_lock(), workspace_lock(), changed_files())
    if not report:
        print("dvc.lock and the committed outputs are up to date: `dvc repro` changed nothing.")
        return
    print(
        "Stale: `dvc repro` on this commit changes what it records. Run `dvc repro` and commit "
        "dvc.lock, metrics/ and plots/.",
        file=sys.stderr,
    )
    for stage, reasons in report.items():
        label = f"stage '{stage}'" if stage != NO_STAGE else "not written by any stage"
        print(f"  {label}: {'; '.join(reasons)}", file=sys.stderr)
    sys.exit(EXIT_STALE)


if __name__ == "__main__":
    main()
