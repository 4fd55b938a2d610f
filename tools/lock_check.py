"""Is the commit what `dvc repro` makes? `make lock-check`, in a clean checkout.

    python -m tools.lock_check

The pipeline writes identical bytes for identical inputs on every machine, so `dvc repro` must
leave every committed file as it was. First `dvc status` says, in DVC's words, which stages the
commit records as stale (a param or code changed without rerunning, or an output edited by
hand); then `dvc repro` runs, and `git status` lists what it changed. Exits 1 if anything did.
"""

import json
import sys

from pytorch_workflow.errors import exit_on_user_error
from tools.commands import output_of, streamed

# How `dvc status` describes outputs that are merely absent: a fresh clone has no data yet.
ABSENT = ("deleted", "not in cache")


def stale_stages(absent: list[str] | None = None) -> dict[str, list[str]]:
    """Each stage whose dvc.lock entry no longer matches its params, code or committed outputs.

    Outputs that are merely absent (a fresh clone) are not stale; they go to `absent`.
    """
    status = json.loads(output_of("dvc", "status", "--json") or "{}")
    stale: dict[str, list[str]] = {}
    for stage, changes in status.items():
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            for kind, entries in change.items():
                for path, what in entries.items():
                    if what in ABSENT:
                        if absent is not None:
                            absent.append(path)
                        continue
                    if isinstance(what, dict):  # params: {"train.lr": "modified"}
                        detail = "; ".join(f"{how} {key}" for key, how in sorted(what.items()))
                    else:
                        detail = what
                    stale.setdefault(stage.removeprefix("dvc.yaml:"), []).append(
                        f"{kind}: {path} ({detail})"
                    )
    return stale


def git_status() -> set[str]:
    return set(output_of("git", "status", "--porcelain", "--untracked-files=all").splitlines())


@exit_on_user_error
def main() -> None:
    stale = stale_stages()
    # Files a user left beside the pipeline (a predictions CSV) are not what `dvc repro` made.
    before = git_status()
    streamed("dvc", "repro")
    changed = sorted(git_status() - before)
    if not stale and not changed:
        print("dvc.lock and the committed outputs are up to date: `dvc repro` changed nothing.")
        return
    print("Stale: the commit does not record what `dvc repro` makes.", file=sys.stderr)
    for stage, reasons in stale.items():
        print(f"  stage '{stage}': {'; '.join(reasons)}", file=sys.stderr)
    for line in changed:
        print(f"  changed by dvc repro: {line[3:]}", file=sys.stderr)
    print("Run `dvc repro` and commit dvc.lock, metrics/ and plots/.", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
