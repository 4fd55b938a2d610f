"""The review report: the workspace against a base revision, for a pull request or a branch.

    python -m pytorch_workflow.report --base main      # what `make report BASE=main` runs

Writes `report.md` (the regression gate's verdict, `dvc params diff`, `dvc metrics diff`) and,
beside it in `report/`, the pipeline's figures from the base revision and the workspace, shown
side by side. It reports on the workspace as it is: run `dvc repro` first.

Exit status: 0 when every metric in `regression_gate.yaml` is within its allowance, 1 when one
regressed (report.md is written all the same, so CI can post it), 2 when no report could be made.
No stage imports this module.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pytorch_workflow.errors import UserError, exit_on_user_error
from pytorch_workflow.files import atomic_write_bytes, atomic_write_text
from pytorch_workflow.gate import GATE_FILE, Verdict, judge, load_allowances
from pytorch_workflow.paths import load_paths

EXIT_REGRESSION = 1

# The pipeline's own PNGs (evaluate writes them, git keeps them): title, field of `Paths`.
FIGURES = (("Loss curves", "loss_figure"), ("Predictions vs actual", "predictions_figure"))


def command_output(args: list[str]) -> str:
    """Run git or dvc; a failure becomes a one-line error with the tool's last words."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"`{' '.join(args)}` failed: {lines[-1]}")
    return result.stdout


def resolve_base(base: str) -> str:
    """The base revision's short commit id; an unknown name is an error before any work."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--short", f"{base}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise UserError(
            f"--base {base}: not a git revision here (a shallow clone lacks history; "
            "fetch with full depth)"
        )
    return result.stdout.strip()


def diff_table(kind: str, base: str) -> str:
    """`dvc params diff` or `dvc metrics diff` as Markdown, or "" when nothing changed."""
    table = command_output(["dvc", kind, "diff", base, "--md"]).strip()
    # With nothing changed, DVC prints the header row and the separator only.
    return table if len(table.splitlines()) > 2 else ""


def copy_figures(base: str, image_dir: Path) -> list[tuple[str, Path | None, Path | None]]:
    """Each figure from the base revision (git) and the workspace, copied into `image_dir`."""
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = load_paths()
    figures = []
    for title, field in FIGURES:
        source = Path(getattr(paths, field))
        copies: list[Path | None] = []
        for side in ("base", "workspace"):
            target = image_dir / f"{side}-{source.name}"
            target.unlink(missing_ok=True)  # never show a picture left from an earlier report
            data = _figure_bytes(base, source) if side == "base" else _workspace_bytes(source)
            if data is None:
                copies.append(None)
            else:
                atomic_write_bytes(target, data)
                copies.append(target)
        figures.append((title, copies[0], copies[1]))
    return figures


def _figure_bytes(base: str, path: Path) -> bytes | None:
    shown = subprocess.run(["git", "show", f"{base}:{path.as_posix()}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


def _workspace_bytes(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def gate_section(verdicts: list[Verdict], base: str, gate_file: str) -> str:
    failed = [verdict for verdict in verdicts if not verdict.passed]
    if failed:
        summary = "**Failed.** " + " ".join(f"{v.describe()}." for v in failed)
    else:
        summary = f"**Passed:** every metric in `{gate_file}` is within its allowance."
    rows = [
        f"| Metric | {base} | workspace | Change | Allowed | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for verdict in verdicts:
        allowance = verdict.allowance
        allowed = (
            f"rise <= {allowance.amount:g}"
            if allowance.direction == "max_increase"
            else f"fall <= {allowance.amount:g}"
        )
        rows.append(
            f"| {allowance.name} | {_number(verdict.old)} | {_number(verdict.new)} "
            f"| {_number(verdict.change, sign=True)} | {allowed} "
            f"| {'ok' if verdict.passed else '**regressed**'} |"
        )
    return "\n".join([summary, "", *rows])


def _number(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.6g}" if sign else f"{value:.6g}"


def figures_section(
    figures: list[tuple[str, Path | None, Path | None]], base: str, report_dir: Path
) -> str:
    rows = [f"| | {base} | workspace |", "|---|---|---|"]
    for title, base_copy, workspace_copy in figures:
        cells = [
            f"![{title}, {side}]({copy.relative_to(report_dir).as_posix()})"
            if copy is not None
            else "not in this revision"
            for side, copy in ((base, base_copy), ("workspace", workspace_copy))
        ]
        rows.append(f"| {title} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def build_report(base: str, output: Path, gate_file: str) -> tuple[str, list[Verdict]]:
    """The Markdown text and the gate's verdicts; the figures are written beside `output`."""
    base_id = resolve_base(base)
    allowances = load_allowances(gate_file)
    metrics_diff = json.loads(
        command_output(["dvc", "metrics", "diff", base, "--all", "--json"]) or "{}"
    )
    verdicts = judge(allowances, metrics_diff)
    params = diff_table("params", base)
    metrics = diff_table("metrics", base)
    report_dir = output.resolve().parent
    figures = copy_figures(base, report_dir / output.stem)
    text = "\n\n".join(
        [
            f"# Pipeline report: workspace against {base} ({base_id})",
            "## Regression gate",
            gate_section(verdicts, base, gate_file),
            "## Params",
            params or f"No param differs from {base}.",
            "## Metrics",
            metrics or f"No metric differs from {base}.",
            "## Figures",
            figures_section(figures, base, report_dir),
        ]
    )
    return text + "\n", verdicts


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare against")
    parser.add_argument("--output", type=Path, default=Path("report.md"), help="Markdown file")
    parser.add_argument("--gate", default=GATE_FILE, help="allowances per metric (YAML)")
    args = parser.parse_args(argv)

    text, verdicts = build_report(args.base, args.output, args.gate)
    atomic_write_text(args.output, text)
    failed = [verdict for verdict in verdicts if not verdict.passed]
    print(f"Wrote {args.output} (workspace against {args.base})")
    for verdict in failed:
        print(f"regression: {verdict.describe()}", file=sys.stderr)
    if failed:
        sys.exit(EXIT_REGRESSION)
    print(f"Regression gate passed: {len(verdicts)} metrics within {args.gate}")


if __name__ == "__main__":
    main()
