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

import semver

from pytorch_workflow.errors import UserError, exit_on_user_error
from pytorch_workflow.export import model_from_bundle
from pytorch_workflow.paths import artifact_name, load_paths
from tools.commands import streamed, uncommitted
from tools.lock_check import describe_stale, stale_stages


def is_version(text: str) -> bool:
    """A semantic version with a `v` before it (v1.2.3, v2.0.0-rc.1), as GTO parses it (with
    the semver package)."""
    return text.startswith("v") and semver.Version.is_valid(text[1:])


def check_releasable() -> None:
    """Refuse a dirty working tree, a stale commit or a bundle that does not load."""
    changed = uncommitted()
    if changed:
        raise UserError(f"uncommitted changes ({changed}): commit them first")
    missing: list[str] = []
    stale = stale_stages(missing)
    if stale:
        raise UserError(
            f"the commit is not what `dvc repro` makes ({describe_stale(stale)}): run `dvc "
            "repro` and `make lock-check`, commit, then release"
        )
    if missing:
        absent = list(dict.fromkeys(missing))  # `dvc status` names an output once per stage
        more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
        raise UserError(
            f"the outputs are not here ({', '.join(absent[:3])}{more} missing): `dvc pull` "
            "them (or `dvc repro`), then release"
        )
    model_from_bundle(load_paths().export_dir)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="a semantic version: v1.2.3")
    args = parser.parse_args(argv)
    if not is_version(args.version):  # checked before anything is pushed
        raise UserError(
            f"VERSION must be a semantic version after a v (v1.2.3, v2.0.0-rc.1), got "
            f"{args.version!r}"
        )

    check_releasable()
    name = artifact_name()
    streamed("dvc", "push", str(load_paths().export_dir))
    streamed("gto", "register", name, "--version", args.version)
    print(f"Released {name}@{args.version}. Share it: git push origin {name}@{args.version}")


if __name__ == "__main__":
    main()
