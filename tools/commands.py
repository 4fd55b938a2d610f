"""Running dvc and git for the tools: a failure becomes one line with the tool's last words."""

import subprocess

from pytorch_workflow.errors import UserError


def output_of(*args: str) -> str:
    """The standard output of a git or dvc command that must succeed."""
    try:
        result = subprocess.run(args, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(f"`{args[0]}` not found: run `make setup` and use its .venv") from None
    if result.returncode != 0:
        raise UserError(f"`{' '.join(args)}` failed: {last_words(result.stderr or result.stdout)}")
    return result.stdout


def last_words(output: str, limit: int = 200) -> str:
    """What a failed git or dvc command said, in one line: its first `ERROR:` (DVC) or `fatal:`
    (git) line where it has one, else its lines joined. Not merely the last line: DVC ends a
    YAML error with the offending line's number and text (`  3`)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("ERROR:", "fatal:", "error:")):
            return line[:limit]
    return " ".join(lines)[:limit] or "no output"


def uncommitted(shown: int = 5) -> str:
    """The tracked files with uncommitted changes, the first `shown` of them named (`a, b and
    3 more`), or "" in a clean working tree. Untracked files (a user's own CSV) do not count."""
    changed = output_of("git", "status", "--porcelain", "--untracked-files=no").splitlines()
    named = ", ".join(line[3:] for line in changed[:shown])
    return f"{named} and {len(changed) - shown} more" if len(changed) > shown else named


def streamed(*args: str) -> None:
    """Run a command with its output on the terminal; a failure is a one-line error."""
    try:
        returncode = subprocess.run(args).returncode
    except FileNotFoundError:
        raise UserError(f"`{args[0]}` not found: run `make setup` and use its .venv") from None
    if returncode != 0:
        raise UserError(f"`{' '.join(args)}` failed (its output is above)")
