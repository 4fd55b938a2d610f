"""The review report: the workspace against a base revision, for a pull request or a branch.

    python -m tools.report --base main                        # what `make report BASE=main` runs
    python -m tools.report --base main --summary "$GITHUB_STEP_SUMMARY"   # in CI

Writes report.md: the regression gate's verdict (the base's regression_gate.yaml: a change does
not loosen the gate that judges it), `dvc params diff` and `dvc metrics diff` as Markdown
tables, the loss curves of both revisions as a table of epochs, and the pipeline's figures side
by side (PNG copies in report/, with `dvc plots diff`'s
interactive page in report/plots/). With --summary, the same report without the images is
appended to that file: a CI job summary shows Markdown tables, not files from the run. It
reports on the workspace as it is; where its results are out of date (`dvc status` names a
stage), the report says so and judges nothing: run `dvc repro` first (or `dvc checkout`, where
only the outputs differ from dvc.lock's, after a `git checkout`).

Exit status: 0 when every gated metric is within its allowance, 1 when one regressed (the report
is written all the same), 2 when the results are out of date or the workspace's gate has a mistake
(the report is written, and says so) or when no report could be made.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pytorch_workflow.errors import UserError, exit_on_user_error, first_line
from pytorch_workflow.files import atomic_write_bytes, atomic_write_text
from pytorch_workflow.params import closest_name
from pytorch_workflow.paths import load_paths
from tools.commands import output_of
from tools.gate import (
    GATE_FILE,
    Allowance,
    Verdict,
    judge,
    load_allowances,
    old_and_new,
    parse_allowances,
)
from tools.lock_check import describe_stale, remedy, stale_stages

EXIT_REGRESSION = 1
LOSS_ROWS = 11  # epochs shown of each revision's loss curve
LOSS_COLUMNS = ("train_loss", "test_loss")


def resolve_base(base: str) -> str:
    """The base revision's short commit id; an unknown name is an error before any work."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--short", f"{base}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        shallow = subprocess.run(
            ["git", "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
        ).stdout.strip()
        hint = " (this clone is shallow: `git fetch --unshallow` brings the history)"
        raise UserError(
            f"--base {base}: not a git revision here{hint if shallow == 'true' else ''}"
        )
    return result.stdout.strip()


def committed(base: str, path: Path) -> bytes | None:
    shown = subprocess.run(["git", "show", f"{base}:{path.as_posix()}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


class Gate(NamedTuple):
    allowances: list[Allowance]
    whose: str  # "main's", or "this change's" where the base has none
    note: str  # what the change does to the gate, or ""
    problem: str = ""  # a mistake in the change's own gate, or ""
    own: list[Allowance] | None = None  # the workspace's own gate, where it parses


def judging_gate(base: str) -> Gate:
    """The gate that judges the change: the base revision's (a change that loosened its own
    gate would pass itself), or the change's where the base has none yet."""
    at_base = committed(base, Path(GATE_FILE))
    if at_base is None:
        note = f"{base} has no `{GATE_FILE}` yet: this change's judges it."
        try:
            own = load_allowances(GATE_FILE)
            return Gate(own, "this change's", note, own=own)
        except UserError as error:  # the report is still written, and says so
            return Gate([], "this change's", note, problem=f"this change's {error}")
    here = _read(Path(GATE_FILE))
    if here is None:
        note = (
            f"This change deletes `{GATE_FILE}`: {base}'s judges it; once it is merged, "
            "reports fail until a gate is committed again."
        )
    elif here != at_base:
        note = (
            f"`{GATE_FILE}` differs from {base}'s: this change is judged by {base}'s "
            "allowances, and its own apply once it is merged."
        )
    else:
        note = ""
    allowances = parse_allowances(at_base, f"{base}:{GATE_FILE}")
    if here is None:
        return Gate(allowances, f"{base}'s", note)
    try:  # named now, not after the merge, when it would break every report
        own = allowances if here == at_base else parse_allowances(here, GATE_FILE)
    except UserError as error:
        return Gate(allowances, f"{base}'s", note, problem=f"this change's {error}")
    return Gate(allowances, f"{base}'s", note, own=own)


def applied_gate(gate: Gate, base: str, metrics_diff: dict[str, Any]) -> tuple[Gate, list[Verdict]]:
    """The judging gate and its verdicts. A base gate that names none of the metrics either
    revision records (a classifier under a regressor's gate) judges nothing: the change's own
    gate judges instead, as where the base has none."""
    verdicts = judge(gate.allowances, metrics_diff)
    if gate.problem:
        return gate, verdicts
    gate = gate._replace(problem=misspelt_metrics(gate.own or [], metrics_diff))
    if gate.problem or any(verdict.recorded for verdict in verdicts):
        return gate, verdicts
    if gate.own and gate.own != gate.allowances:
        own_verdicts = judge(gate.own, metrics_diff)
        if any(verdict.recorded for verdict in own_verdicts):
            note = (
                f"{base}'s `{GATE_FILE}` names none of the metrics either revision records: "
                "this change's judges it."
            )
            return Gate(gate.own, "this change's", note), own_verdicts
    problem = (
        f"{GATE_FILE} names none of the metrics either revision records (`dvc metrics show` "
        "lists them): add allowances for them (docs/review.md)"
    )
    return gate._replace(problem=problem), verdicts


def misspelt_metrics(allowances: list[Allowance], metrics_diff: dict[str, Any]) -> str:
    """A mistake in the workspace's gate: a metric (or metrics file) that neither revision
    records, spelt like one that they do (`maee`, `MAE`), so never judged; or "". Another task's
    metric is spelt like none of this one's."""
    files = list(metrics_diff)
    for allowance in allowances:
        if allowance.file not in metrics_diff:
            meant = closest_name(allowance.file, files)
            if meant:
                return f"{GATE_FILE}: {allowance.file} is no metrics file; did you mean {meant}?"
            continue
        recorded = [
            metric
            for metric, values in metrics_diff[allowance.file].items()
            if old_and_new(values) != (None, None)
        ]
        meant = closest_name(allowance.metric, recorded) if allowance.metric not in recorded else ""
        if meant:
            return (
                f"{GATE_FILE}: {allowance.name} is recorded by neither revision; "
                f"did you mean {meant}?"
            )
    return ""


# `dvc metrics diff` rounds to 5 decimals by default: a test MSE of 1.4e-06 would read 0.0.
METRIC_DECIMALS = "10"


def diff_table(kind: str, base: str) -> str:
    """`dvc params diff` or `dvc metrics diff` as Markdown, or "" when nothing changed."""
    rounding = ["--precision", METRIC_DECIMALS] if kind == "metrics" else []
    table = output_of("dvc", kind, "diff", base, "--md", *rounding).strip()
    # With nothing changed, DVC prints the header row and the separator only.
    return table if len(table.splitlines()) > 2 else ""


def gate_section(verdicts: list[Verdict], base: str, gate: Gate, out_of_date: str) -> str:
    failed = [verdict for verdict in verdicts if not verdict.passed]
    if out_of_date:
        summary = (
            f"**Not judged:** the workspace's results are {out_of_date}. "
            "The tables show them as they are."
        )
    elif failed:
        summary = "**Failed.** " + " ".join(f"{v.describe()}." for v in failed)
    else:
        summary = f"**Passed:** every metric in {gate.whose} `{GATE_FILE}` is within its allowance."
    if gate.note:
        summary += f"\n\n{gate.note}"
    if gate.problem:
        summary += f"\n\n**Mistake:** {gate.problem}"
    rows = [
        f"| Metric | {base} | workspace | Change | Allowed | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for verdict in verdicts:
        allowance = verdict.allowance
        limit = "rise" if allowance.direction == "max_increase" else "fall"
        rows.append(
            f"| {allowance.name} | {_number(verdict.old)} | {_number(verdict.new)} "
            f"| {_number(verdict.change, sign=True)} | {limit} <= {allowance.amount:g} "
            f"| {'-' if out_of_date else _verdict(verdict)} |"
        )
    return "\n".join([summary, "", *rows])


def _verdict(verdict: Verdict) -> str:
    if not verdict.recorded:
        return "not recorded"
    return "ok" if verdict.passed else "**regressed**"


def _number(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.6g}" if sign else f"{value:.6g}"


def loss_section(base: str, loss_table: Path) -> str:
    """The two revisions' loss curves, read from plots/loss.csv (a row an epoch), each at about
    ten round epochs of its own and its last (0, 10, ..., 90, 99 for 100 epochs), side by side."""
    sides = {
        base: committed(base, loss_table),
        "workspace": loss_table.read_bytes() if loss_table.is_file() else None,
    }
    curves = {
        side: loss_curve(data, f"{loss_table.as_posix()} ({side})")
        for side, data in sides.items()
        if data is not None
    }
    shown = sorted({epoch for rows in curves.values() for epoch in sampled_epochs(len(rows))})
    if not shown:
        return "No loss curves in either revision."
    header = ["epoch"] + [f"{side} {kind}" for side in sides for kind in ("train", "test")]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for epoch in shown:
        cells = [str(epoch)]
        for side in sides:
            row = curves.get(side, [])[epoch] if epoch < len(curves.get(side, [])) else None
            cells += [f"{loss:.6g}" for loss in row] if row else ["-"] * len(LOSS_COLUMNS)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def sampled_epochs(epochs: int) -> list[int]:
    """Every k-th epoch from 0, k the smallest step that reaches the last in LOSS_ROWS - 1
    steps (10 for 100 epochs), and the last epoch."""
    if not epochs:
        return []
    step = max(1, math.ceil((epochs - 1) / (LOSS_ROWS - 1)))
    return sorted({*range(0, epochs, step), epochs - 1})


def loss_curve(data: bytes, where: str) -> list[tuple[float, float]]:
    """Each epoch's train and test loss from a loss table's bytes; a table that is not UTF-8
    CSV with a number in each loss column is a one-line error naming `where` and the line."""
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    except UnicodeDecodeError as error:
        raise UserError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise UserError(f"{where}: not a CSV table ({first_line(error)})") from None
    curve = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        losses = []
        for column in LOSS_COLUMNS:
            value = row.get(column)
            try:
                losses.append(float(value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                found = "missing" if value is None else repr(value[:40])
                raise UserError(
                    f"{where}, line {line}: {column} is {found}, not a number"
                ) from None
        curve.append((losses[0], losses[1]))
    return curve


def figures_section(base: str, report_dir: Path) -> str:
    """Each PNG figure of the pipeline from both revisions, copied beside the report."""
    images = report_dir / "report"
    images.mkdir(parents=True, exist_ok=True)
    paths = load_paths()
    rows = [f"| | {base} | workspace |", "|---|---|---|"]
    for title, source in (
        ("Loss curves", paths.loss_figure),
        ("Predictions", paths.predictions_figure),
    ):
        cells = []
        for side, data in (("base", committed(base, source)), ("workspace", _read(source))):
            target = images / f"{side}-{source.name}"
            target.unlink(missing_ok=True)  # never show a picture left from an earlier report
            if data is None:
                cells.append("not in this revision")
                continue
            atomic_write_bytes(target, data)
            cells.append(f"![{title}, {side}]({target.relative_to(report_dir).as_posix()})")
        rows.append(f"| {title} | {cells[0]} | {cells[1]} |")
    plots = subprocess.run(
        ["dvc", "plots", "diff", base, "--out", str(images / "plots")], capture_output=True
    )
    if plots.returncode == 0:
        rows.append("\nAll plots, interactive: `report/plots/index.html` (`dvc plots diff`).")
    return "\n".join(rows)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


class Report(NamedTuple):
    text: str
    summary: str  # the same without its figures, for a job summary
    verdicts: list[Verdict]
    # "out of date (the stale stages): run REMEDY": then nothing is judged; or "".
    out_of_date: str
    gate_problem: str  # a mistake in the change's gate, or ""


def build_report(base: str, report_dir: Path) -> Report:
    """The report of the workspace against `base`, and the gate's verdicts."""
    base_id = resolve_base(base)
    stale = stale_stages()
    out_of_date = f"out of date ({describe_stale(stale)}): run {remedy(stale)}" if stale else ""
    gate = judging_gate(base)
    metrics_diff = json.loads(output_of("dvc", "metrics", "diff", base, "--all", "--json") or "{}")
    gate, verdicts = applied_gate(gate, base, metrics_diff)
    sections = [
        f"# Pipeline report: workspace against {base} ({base_id})",
        "## Regression gate",
        gate_section(verdicts, base, gate, out_of_date),
        "## Params",
        diff_table("params", base) or f"No param differs from {base}.",
        "## Metrics",
        diff_table("metrics", base) or f"No metric differs from {base}.",
        "## Loss curves",
        loss_section(base, load_paths().loss_table),
    ]
    figures = ["## Figures", figures_section(base, report_dir)]
    text, summary = "\n\n".join(sections + figures) + "\n", "\n\n".join(sections) + "\n"
    return Report(text, summary, verdicts, out_of_date, gate.problem)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare against")
    parser.add_argument("--output", type=Path, default=Path("report.md"), help="Markdown file")
    parser.add_argument("--summary", type=Path, default=None, help="also append, without images")
    args = parser.parse_args(argv)

    report = build_report(args.base, args.output.resolve().parent)
    with contextlib.ExitStack() as stack:
        # Opened first: a summary file that cannot be written leaves no report either.
        appended = None
        if args.summary is not None:
            appended = stack.enter_context(open(args.summary, "a", encoding="utf-8"))
        atomic_write_text(args.output, report.text)
        print(f"Wrote {args.output} (workspace against {args.base})")
        if appended is not None:
            appended.write(report.summary)
            print(f"Appended the report to {args.summary}")
    # What follows, the report says too: a reviewer gets its tables whatever the verdict.
    if report.out_of_date:
        raise UserError(f"the workspace's results are {report.out_of_date}, then the report")
    verdicts = report.verdicts
    failed = [verdict for verdict in verdicts if not verdict.passed]
    for verdict in failed:
        print(f"regression: {verdict.describe()}", file=sys.stderr)
    if report.gate_problem:
        raise UserError(report.gate_problem)
    if failed:
        sys.exit(EXIT_REGRESSION)
    judged = sum(verdict.recorded for verdict in verdicts)
    print(f"Regression gate passed: {judged} metrics within their allowances")


if __name__ == "__main__":
    main()
