"""Running dvc and git for the tools: a failure becomes one line with the tool's last words."""

import re
import subprocess
from pathlib import Path

from pytorch_workflow.errors import UserError


def output_of(*args: str) -> str:
    """The standard output of a git or dvc command that must succeed."""
    try:
        result = subprocess.run(args, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(f"`{args[0]}` not found: run `make setup` and use its .venv") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"`{' '.join(args)}` failed: {lines[-1]}")
    return result.stdout


def streamed(*args: str) -> None:
    """Run a command with its output on the terminal; a failure is a one-line error."""
    try:
        returncode = subprocess.run(args).returncode
    except FileNotFoundError:
        raise UserError(f"`{args[0]}` not found: run `make setup` and use its .venv") from None
    if returncode != 0:
        raise UserError(f"`{' '.join(args)}` failed (its output is above)")


def documented_commands(page: Path) -> list[str]:
    """The commands of a Markdown page's ```bash blocks as a user types them: continuation
    lines joined, comments dropped."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                found.append(re.sub(r"\s+", " ", command))
    return found
