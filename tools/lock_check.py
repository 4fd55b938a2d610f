"""Does the commit reproduce? `make lock-check`, in a clean checkout.

    python -m tools.lock_check

It reruns every stage (`dvc repro --force`), whatever the workspace already holds. Three
outcomes, each said in one line:
- it reproduces byte for byte: `dvc repro` changes no committed file (exit 0);
- it reproduces within the declared tolerance (`tolerances.yaml`): only recorded numbers
  changed, none by more than the tolerance; the line names the largest relative difference and
  the platform difference that explains it (exit 0);
- it does not: `dvc status` finds a stage whose params, code or outputs the commit changed
  without rerunning it (named down to the param, `train.epochs`), or `dvc repro` changes a
  number by more than the tolerance or a file that is not a recorded number (exit 1).

`dvc repro` rewrites dvc.lock and the results in the working tree, so uncommitted changes
to tracked files are refused before anything runs (exit 2), and so is data that a `.dvc` file
tracks when it is not the recorded one; untracked files do not count.
"""

import json
import platform
import sys
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from pytorch_workflow.errors import UserError, exit_on_user_error, first_line
from pytorch_workflow.params import ABSENT, PARAMS_FILE, changed_values, read_yaml_mapping
from tools.commands import output_of, streamed, uncommitted
from tools.tolerance import (
    LIVE_RESULTS,
    NUMBER_FILES,
    RESULTS,
    TOLERANCE_FILE,
    largest_difference,
    load_tolerance,
    number_files,
    numbers_of,
)

# How `dvc status` describes outputs that are merely absent: a fresh clone has no data yet.
NOT_HERE = ("deleted", "not in cache")
LOCK_FILE = "dvc.lock"
TRAIN_METRICS = "metrics/train.json"
# numpy's stages: their outputs are the same bytes on every machine, tolerance or not.
EXACT_STAGES = ("prepare", "split")


class Change(NamedTuple):
    """One way a stage differs from its record in dvc.lock, as `dvc status` says it."""

    kind: str  # "changed deps", "changed outs", or one for the whole stage ("changed command")
    path: str = ""
    detail: str = ""  # "modified", or the params that changed, each named to its key

    def __str__(self) -> str:
        return f"{self.kind}: {self.path} ({self.detail})" if self.path else self.kind


def stale_stages(absent: list[str] | None = None) -> dict[str, list[Change]]:
    """Each stage whose dvc.lock entry no longer matches its params, code or outputs.

    Outputs that are merely absent (a fresh clone) are not stale; they go to `absent`.
    """
    if Path(LOCK_FILE).is_file():
        read_lock(Path(LOCK_FILE).read_bytes(), LOCK_FILE)  # DVC names no reason for bad YAML
    status = json.loads(output_of("dvc", "status", "--json") or "{}")
    stale: dict[str, list[Change]] = {}
    for stage, changes in status.items():
        name = stage.removeprefix("dvc.yaml:")
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):  # "changed command"; "always changed" is by design
                if change != "always changed":
                    stale.setdefault(name, []).append(Change(str(change)))
                continue
            for kind, entries in change.items():
                for path, what in entries.items():
                    if what in NOT_HERE:
                        if absent is not None:
                            absent.append(path)
                        continue
                    if isinstance(what, dict):  # params: {"train": "modified"}
                        detail = "; ".join(changed_params(name, sorted(what)))
                    else:
                        detail = what
                    stale.setdefault(name, []).append(Change(kind, path, detail))
    return stale


def describe_stale(stale: dict[str, list[Change]]) -> str:
    """`stale_stages` in one line: `stage 'train': changed deps: params.yaml (modified
    train.epochs) | stage ...`."""
    return " | ".join(f"stage '{name}': {'; '.join(map(str, why))}" for name, why in stale.items())


def only_outputs_differ(stale: dict[str, list[Change]]) -> bool:
    """Whether dvc.lock agrees with the params and code, and only the workspace holds other
    outputs than it records (a `git checkout` without `dvc checkout`, a DVC-tracked output
    edited by hand): `dvc checkout` brings back the recorded ones, and nothing need run again."""
    changes = [change for why in stale.values() for change in why]
    outputs = {c.path for c in changes if c.kind == "changed outs" and c.detail == "modified"}
    # A changed dep is another stage's output only where that stage says so too: a dep whose
    # producer is up to date means dvc.lock disagrees with itself (a stage rerun alone and
    # committed), which only `dvc repro` mends.
    if not outputs or not all(
        change.path in outputs
        or (change.kind == "changed deps" and change.path and holds_only(change.path, outputs))
        for change in changes
    ):
        return False
    # An output that git holds (a metrics file) is the commit's own: a checkout is no remedy.
    return not output_of("git", "ls-files", "--", *outputs).strip()


def holds_only(folder: str, outputs: set[str]) -> bool:
    """Whether a folder dep (`data/raw`) differs only through the DVC-tracked outputs in it (a
    CSV that `dvc add` tracks): it holds one, and git finds the rest of it as committed, no
    file added or ignored beside. (A file committed to the folder without `dvc repro` is not
    seen here: after the checkout, `dvc status` names it.)"""
    inside = {output for output in outputs if Path(output).is_relative_to(folder)}
    if not inside:
        return False
    # NUL-separated, so that git quotes no name (`my data.csv`); a rename adds its old name.
    listed = output_of(
        "git", "status", "--porcelain", "-z", "--ignored", "--untracked-files=all", "--", folder
    )
    others = [entry[3:] for entry in listed.split("\0") if entry[3:] and entry[3:] not in inside]
    return not others


# What brings back the outputs dvc.lock records, where only they differ.
CHECKOUT = "`dvc checkout` (`dvc pull` where the cache lacks them)"


def remedy(stale: dict[str, list[Change]]) -> str:
    """What brings the workspace in line with dvc.lock: a checkout, or a rerun."""
    return CHECKOUT if only_outputs_differ(stale) else "`dvc repro`"


def read_lock(data: bytes, where: str) -> dict:
    """dvc.lock's contents, or a one-line error naming `where` and what is wrong with it."""
    try:
        lock = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(
            f"{where} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise UserError(
            f"{where} is not valid YAML: {error.problem or error.context}{at}: fix it, or restore "
            "a good one from git"
        ) from None
    except yaml.YAMLError as error:
        raise UserError(f"{where} is not valid YAML: {first_line(error)}") from None
    if lock is not None and not isinstance(lock, dict):
        raise UserError(f"{where} holds a {type(lock).__name__}, not DVC's mapping of stages")
    return lock or {}


def changed_params(stage: str, sections: list[str]) -> list[str]:
    """The params whose values differ between dvc.lock's record of a stage and params.yaml, each
    named to its key (`modified train.epochs`), where DVC names only a section."""
    lock = read_lock(Path(LOCK_FILE).read_bytes(), LOCK_FILE)
    recorded = lock.get("stages", {}).get(stage, {}).get("params", {}).get(PARAMS_FILE, {})
    current = read_yaml_mapping(Path(PARAMS_FILE))  # as DVC reads it
    found = []
    for section in sections:
        # DVC names a section, or a key that the stage reads alone (`data.standardize`), as
        # dvc.lock records it.
        was = recorded.get(section, ABSENT)
        keys = changed_values(was, _value_at(current, section), section)
        found += [
            f"{'added' if was is ABSENT else 'removed' if now is ABSENT else 'modified'} {key}"
            for key, was, now in keys
        ] or [f"modified {section}"]
    return found


def _value_at(params: dict[str, Any], key: str) -> Any:
    """The value of a dotted key (`data.standardize`) in params.yaml; ABSENT where it has none."""
    value: Any = params
    for name in key.split("."):
        value = value.get(name, ABSENT) if isinstance(value, dict) else ABSENT
    return value


def changed_data() -> list[str]:
    """The outputs of the exact stages whose hashes `dvc repro` changed in dvc.lock."""
    committed = read_lock(output_of("git", "show", f"HEAD:{LOCK_FILE}").encode(), LOCK_FILE)
    current = read_lock(Path(LOCK_FILE).read_bytes(), LOCK_FILE)
    changed = []
    for stage in EXACT_STAGES:
        before, after = (
            {out["path"]: out.get("md5") for out in lock["stages"].get(stage, {}).get("outs", [])}
            for lock in (committed, current)
        )
        changed += [path for path, md5 in before.items() if after.get(path) != md5]
    return changed


def git_status() -> set[str]:
    return set(output_of("git", "status", "--porcelain", "--untracked-files=all").splitlines())


def recorded_numbers(revision: str | None) -> dict[str, float]:
    """Every recorded number of a commit (`revision`) or of the workspace (None)."""
    numbers: dict[str, float] = {}
    for name in number_files(output_of("git", "ls-files", *RESULTS).split()):
        if revision is None:
            text = Path(name).read_text(encoding="utf-8") if Path(name).exists() else ""
        else:
            text = output_of("git", "show", f"{revision}:{name}")
        if text:
            numbers.update(numbers_of(name, text))
    return numbers


def platform_difference() -> str:
    """What differs between where the commit was made and here, from metrics/train.json."""
    import torch  # only for this line: the lock check itself needs no torch

    recorded = json.loads(output_of("git", "show", f"HEAD:{TRAIN_METRICS}"))
    here = json.loads(Path(TRAIN_METRICS).read_text(encoding="utf-8"))
    differences = [
        f"{key} {recorded.get(key)} there, {here.get(key)} here"
        for key in ("machine", "device", "processes")
        if recorded.get(key) != here.get(key)
    ]
    if differences:
        return "; ".join(differences)
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"the same machine kind, device and processes: the CPU's kernels differ (this one "
        f"runs torch's {capability} kernels, {platform.processor() or platform.machine()})"
    )


@exit_on_user_error
def main() -> None:
    # `dvc repro` below rewrites dvc.lock and the results in place: a user's uncommitted
    # work there would be lost, and the verdict would not be the commit's.
    changed = uncommitted()
    if changed:
        raise UserError(
            f"uncommitted changes ({changed}): `make lock-check` checks the commit and reruns "
            "the pipeline over the working tree; commit or stash them first"
        )
    stale = stale_stages()
    # Data that a .dvc file tracks (`dvc add`), changed since: as much a change to the commit.
    edited = [
        change.path
        for name, why in stale.items()
        if name.endswith(".dvc")
        for change in why
        if change.kind == "changed outs" and change.path
    ]
    if edited:
        raise UserError(
            f"{', '.join(edited)}: not the data the commit's .dvc file records: `dvc checkout "
            f"{' '.join(edited)}` (`dvc pull` where the cache lacks it) to check the commit, or "
            "`dvc add` and commit yours, first"
        )
    # Outputs that are not dvc.lock's, the commit's params and code unchanged: made again below.
    if stale and not only_outputs_differ(stale):
        print(
            f"Does not reproduce: the commit is stale: {describe_stale(stale)}; run `dvc repro` "
            f"and commit dvc.lock, {', '.join(RESULTS)}.",
            file=sys.stderr,
        )
        sys.exit(1)
    tolerance = load_tolerance()
    committed = recorded_numbers("HEAD")
    # Files a user left beside the pipeline (a predictions CSV) are not what `dvc repro` made.
    before = git_status()
    # Every stage runs again: outputs already in the workspace (a working checkout, a
    # `dvc pull`) would otherwise be taken as made, and nothing would be checked.
    streamed("dvc", "repro", "--force")
    made = sorted(git_status() - before)
    if not made:
        print("Reproduces byte for byte: `dvc repro` changed no committed file.")
        return
    key, worst, outside = largest_difference(committed, recorded_numbers(None), tolerance)
    # A file the commit lacks (deleted from git, never added) is not what the pipeline makes.
    others = [f"{line[3:]} is not in the commit" for line in made if line.startswith("??")]
    changed = [line[3:] for line in made if not line.startswith("??")]
    others += [
        f"{name} changed" for name in changed if name != LOCK_FILE and not name.startswith(RESULTS)
    ]
    others += [f"{name} changed" for name in changed_data()] if LOCK_FILE in changed else []
    if key is None:  # every recorded number as committed: a plot's picture has no excuse
        others += [
            f"{name} changed"
            for name in changed
            if name.startswith(RESULTS) and not name.endswith(NUMBER_FILES)
        ]
    if not others and not outside:
        print(
            f"Reproduces within the declared tolerance ({TOLERANCE_FILE.name}): the largest "
            f"relative difference is {worst:.3g}, in {key}; {platform_difference()}."
        )
        return
    # DVCLive's numbers repeat others: named only where none of those is beyond the tolerance.
    named = [key for key in outside if not key.startswith(LIVE_RESULTS)] or outside
    what = [f"{name} beyond the tolerance" for name in named[:5]] + others
    more = f" (and {len(named) - 5} more numbers)" if len(named) > 5 else ""
    print(f"Does not reproduce: {', '.join(what)}{more}.", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
