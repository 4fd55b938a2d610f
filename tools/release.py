"""Release the exported model: a version in the model registry, with DVC's own tools.

    python -m tools.release v1.2.3        # what `make release VERSION=v1.2.3` runs

The registry is git tags in GTO's format (`linear-regression@v1.2.3` registers a version,
`linear-regression#prod#1` assigns a stage); `dvc.yaml`'s `artifacts:` names the model and its
folder. A version is registered only from a commit that records what `dvc repro` makes: no
uncommitted changes to tracked files (git), every stage up to date with `dvc.lock` (`dvc
status`, so the bundle is the one whose reload check passed when export ran), and the bundle
loads as `predict` loads it; and the version and the commit are not released yet, here or on
`origin`. The bundle is then pushed to the DVC remote, where `dvc artifacts get` finds it, and
the commit is tagged; `git push origin TAG` shares the tag.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import semver

from pytorch_workflow.errors import UserError, exit_on_user_error, import_model_builder
from pytorch_workflow.paths import artifact_name, load_paths
from tools.commands import output_of, streamed, uncommitted
from tools.lock_check import CHECKOUT, describe_stale, only_outputs_differ, stale_stages


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
    if stale and only_outputs_differ(stale):  # after a `git checkout` without `dvc checkout`
        raise UserError(
            f"the workspace's outputs are not those dvc.lock records ({describe_stale(stale)}): "
            f"run {CHECKOUT}, then release"
        )
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
    # The bundle loads into the model's class: the model classes' file is read only here, so a
    # mistake in it is one line, and the checks above need no torch.
    import_model_builder()
    from pytorch_workflow.export import model_from_bundle

    model_from_bundle(load_paths().export_dir)


def in_force(name: str, tags: list[str]) -> list[str]:
    """The versions among GTO's tags of `name` that are still registered: `NAME@v1.2.3`, unless
    a `NAME@v1.2.3!` deregisters it (`NAME@deprecated` and stage tags are none)."""
    parsed = [re.fullmatch(rf"{re.escape(name)}@(v[^!#]+)(!?)(?:#\d+)?", tag) for tag in tags]
    withdrawn = {match[1] for match in parsed if match and match[2]}
    return [f"{name}@{m[1]}" for m in parsed if m and not m[2] and m[1] not in withdrawn]


def releases_on_origin(name: str) -> dict[str, str]:
    """The versions of `name` on the team's repository, the `origin` remote where there is one,
    each with the commit it tags: a clone without the team's latest tags would release another
    model under a name taken, or a commit already released. `origin` must answer."""
    if "origin" not in output_of("git", "remote").split():
        return {}
    commits: dict[str, str] = {}
    listed = output_of("git", "ls-remote", "--tags", "origin", f"refs/tags/{name}@*")
    for line in listed.splitlines():
        sha, ref = line.split("\t")
        tag = ref.removeprefix("refs/tags/")
        if tag.endswith("^{}"):  # an annotated tag (GTO's), peeled to its commit
            commits[tag.removesuffix("^{}")] = sha
        else:
            commits.setdefault(tag, sha)
    return commits


def remote_inside_clone() -> str | None:
    """The default remote's folder where it lies inside this clone (the committed default,
    `.dvc/storage`): what is pushed there, no teammate can fetch."""
    name = subprocess.run(["dvc", "remote", "default"], capture_output=True, text=True)
    if name.returncode != 0:  # no default remote: `dvc push` says so itself
        return None
    url = output_of("dvc", "config", f"remote.{name.stdout.strip()}.url").strip()
    if "://" in url:
        return None
    folder, clone = Path(url).resolve(), Path.cwd().resolve()
    return str(folder.relative_to(clone)) if folder.is_relative_to(clone) else None


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
    tag = f"{name}@{args.version}"
    # Before anything is pushed.
    if output_of("git", "tag", "--list", tag).strip():
        raise UserError(f"{tag} is already released; give a new VERSION")
    team = releases_on_origin(name)
    if tag in team:
        raise UserError(
            f"{tag} is already released on origin (this clone lacks its tag): `git fetch "
            "--tags`, then give a new VERSION"
        )
    head = output_of("git", "rev-parse", "HEAD").strip()
    here = output_of("git", "tag", "--points-at", "HEAD", "--list", f"{name}@*").split()
    released = in_force(name, here + [other for other, commit in team.items() if commit == head])
    if released:
        raise UserError(
            f"this commit is already released as {released[0]}: GTO registers one version of "
            "a commit; release a new commit"
        )
    unshared = remote_inside_clone()
    if unshared:
        print(
            f"note: the DVC remote is {unshared}, inside this clone: the release is fetchable "
            "here only; point every clone at a shared remote to share it (docs/remotes.md)",
            file=sys.stderr,
        )
    streamed("dvc", "push", str(load_paths().export_dir))
    streamed("gto", "register", name, "--version", args.version)
    print(f"Released {name}@{args.version}. Share it: git push origin {name}@{args.version}")


if __name__ == "__main__":
    main()
