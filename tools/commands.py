"""Running dvc and git for the tools: a failure becomes one line with the tool's last words."""

import subprocess

from pytorch_workflow.errors import UserError


def output_of(*args: str) -> str:
    """The standard output of a git or dvc command that must succeed."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"`{' '.join(args)}` failed: {lines[-1]}")
    return result.stdout


def streamed(*args: str) -> None:
    """Run a command with its output on the terminal; a failure is a one-line error."""
    if subprocess.run(args).returncode != 0:
        raise UserError(f"`{' '.join(args)}` failed (its output is above)")
