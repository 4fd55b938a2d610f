"""Release the exported model: a version in the model registry, with DVC's own tools.

    python -m tools.release v1.2.3        # what `make release VERSION=v1.2.3` runs

The registry is git tags in GTO's format (`linear-regression@v1.2.3` registers a version,
`linear-regression#prod#1` assigns a stage); `dvc.yaml`'s `artifacts:` names the model and its
folder. A version is registered only from a commit that records what `dvc repro` makes: the
working tree is clean (git), every stage is up to date with `dvc.lock` (`dvc status`, so the
bundle is the one whose reload check passed when export ran), and the bundle loads as `predict`
loads it. The bundle is then pushed to the DVC remote, where `dvc artifacts get` finds it, and
the commit is tagged; `git push origin TAG` shares the tag.
"""

import argparse
import re

from pytorch_workflow.errors import UserError, exit_on_user_error
from pytorch_workflow.export import model_from_bundle
from pytorch_workflow.paths import artifact_name, load_paths
from tools.commands import streamed, uncommitted
from tools.lock_check import stale_stages

# Semantic versions, as GTO expects them.
VERSION = re.compile(r"v\d+\.\d+\.\d+")


def check_releasable() -> None:
    """Refuse a dirty working tree, a stale commit or a bundle that does not load."""
    changed = uncommitted()
    if changed:
        raise UserError(f"uncommitted changes ({changed}): commit them first")
    missing: list[str] = []
    stale = stale_stages(missing)
    if stale or missing:
        stages = ", ".join(stale) or f"{', '.join(missing[:3])} missing"
        raise UserError(
            f"the commit is not what `dvc repro` makes ({stages}): run `make lock-check` "
            "(or `dvc pull`), commit, then release"
        )
    model_from_bundle(load_paths().export_dir)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="a semantic version: v1.2.3")
    args = parser.parse_args(argv)
    if not VERSION.fullmatch(args.version):
        raise UserError(f"VERSION must look like v1.2.3, got {args.version!r}")

    check_releasable()
    name = artifact_name()
    streamed("dvc", "push", str(load_paths().export_dir))
    streamed("gto", "register", name, "--version", args.version)
    print(f"Released {name}@{args.version}. Share it: git push origin {name}@{args.version}")


if __name__ == "__main__":
    main()
