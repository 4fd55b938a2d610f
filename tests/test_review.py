"""What CI runs on a pull request, in temporary git copies: the report, its gate, the lock check."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make, run, workspace_files
from tests.test_bad_inputs import set_params
from tests.test_chapter02 import CIRCLES

pytestmark = pytest.mark.slow

FIGURES = ("loss.png", "predictions.png")


def report(repo: Path, base: str = "main", *extra: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "tools.report", "--base", base, *extra], repo, check=False)


def inject(repo: Path, metric: str, change: float, by_hand: bool = False) -> None:
    """Change one number in the workspace's metrics, as a worse or better model would (or as
    an edit by hand would, `by_hand`: dvc.lock does not record it)."""
    path = repo / "metrics/evaluate.json"
    metrics = json.loads(path.read_text())
    metrics[metric] += change
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if not by_hand:
        record_in_lock(repo, "metrics/evaluate.json")


def record_in_lock(repo: Path, *paths: str) -> None:
    """Record the files' hashes in dvc.lock, as if the pipeline had made them: `dvc status`
    then finds the results up to date."""
    import hashlib

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
            if entry["path"] in paths:
                data = (repo / entry["path"]).read_bytes()
                entry["md5"], entry["size"] = hashlib.md5(data).hexdigest(), len(data)
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


def row(*cells: str) -> re.Pattern:
    """A Markdown table row with these cells, however DVC pads them."""
    return re.compile(r"\|\s*" + r"\s*\|\s*".join(map(re.escape, cells)) + r"\s*\|")


@pytest.fixture(scope="module")
def branch_report(reproduced, tmp_path_factory):
    """A branch that trains for 300 epochs, its report against main, and its job summary."""
    from tests.conftest import clone_copy

    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("branch") / "repo")
    run(["git", "checkout", "-q", "-b", "longer-training"], repo)
    run(["dvc", "exp", "run", "-S", "train.epochs=300"], repo)
    run(["git", "commit", "-q", "-am", "Train for 300 epochs"], repo)
    summary = repo.parent / "summary.md"
    summary.write_text("# Earlier step\n")
    result = make(["report", "BASE=main"], repo)
    summarized = report(repo, "main", "--summary", str(summary))
    return repo, result, summarized, summary.read_text()


def test_report_on_a_branch_shows_the_param_metric_and_loss_diff_against_main(branch_report):
    repo, result, _, _ = branch_report

    text = (repo / "report.md").read_text()
    assert text.startswith("# Pipeline report: workspace against main (")
    assert row("params.yaml", "train.epochs", "100", "300").search(text)
    assert row(
        "metrics/evaluate.json", "mae", "0.0568781495", "0.0084478915", "-0.048430258"
    ).search(text)
    # A small metric keeps its digits (DVC's default 5 decimals would show 0.00007).
    assert row("metrics/evaluate.json", "mse", "0.0032838871", "7.137e-05").search(text)
    # Longer training is an improvement: the gate passes and says so.
    assert "**Passed:**" in text and "Regression gate passed" in result.stdout
    assert row("metrics/evaluate.json:mae", "0.0568781", "0.00844789").search(text)
    assert row("0", "0.312881", "0.481065", "0.312881", "0.481065").search(text)  # epoch 0
    # Each side at its own round epochs: main's 100 by tens, the branch's 300 by thirties.
    assert re.search(r"\| 90 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", text)
    assert re.search(r"\| 99 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", text)
    assert row("299", "-", "-").search(text)  # main trained 100 epochs
    for name in FIGURES:
        base_copy, workspace_copy = repo / f"report/base-{name}", repo / f"report/workspace-{name}"
        assert f"](report/base-{name})" in text and f"](report/workspace-{name})" in text
        committed = subprocess.run(
            ["git", "show", f"main:plots/{name}"], cwd=repo, capture_output=True, check=True
        ).stdout
        assert base_copy.read_bytes() == committed
        assert workspace_copy.read_bytes() == (repo / "plots" / name).read_bytes()
        assert base_copy.read_bytes() != workspace_copy.read_bytes()
    assert (repo / "report/plots/index.html").is_file()


def test_the_job_summary_holds_the_report_without_images(branch_report):
    _, _, summarized, summary = branch_report

    assert summarized.returncode == 0, summarized.stderr
    assert summary.startswith("# Earlier step\n# Pipeline report: workspace against main (")
    assert "## Regression gate" in summary and "## Loss curves" in summary
    assert row("params.yaml", "train.epochs", "100", "300").search(summary)
    assert "![" not in summary and "report/" not in summary


@pytest.mark.parametrize(("change", "regressed"), [(+0.05, True), (-0.05, False)])
def test_the_gate_fails_on_a_regression_and_passes_on_an_improvement(
    pipeline_repo, change, regressed
):
    inject(pipeline_repo, "mae", change)

    result = report(pipeline_repo)

    text = (pipeline_repo / "report.md").read_text()
    if regressed:
        assert result.returncode != 0
        assert result.stderr == (
            "regression: metrics/evaluate.json:mae rose by 0.05 (0.0568781 -> 0.106878), "
            "more than the allowed 0.001\n"
        )
        assert "**Failed.** metrics/evaluate.json:mae rose by 0.05" in text
        assert row("metrics/evaluate.json:mae", "0.0568781", "0.106878", "+0.05").search(text)
    else:
        assert result.returncode == 0, result.stderr
        assert "**Passed:**" in text
    assert row("metrics/evaluate.json", "mae", "0.0568781495").search(text)


@pytest.mark.parametrize(
    ("edit", "note"),
    [
        ("loosened", "`regression_gate.yaml` differs from main's: this change is judged by main's"),
        ("deleted", "This change deletes `regression_gate.yaml`: main's judges it"),
    ],
)
def test_a_change_to_the_gate_is_judged_by_the_bases_gate(pipeline_repo, edit, note):
    inject(pipeline_repo, "mae", 0.05)
    gate = pipeline_repo / "regression_gate.yaml"
    if edit == "loosened":
        gate.write_text(gate.read_text().replace("{max_increase: 0.001}", "{max_increase: 1}"))
    else:
        gate.unlink()

    result = report(pipeline_repo)

    assert result.returncode == 1
    assert "mae rose by 0.05 (0.0568781 -> 0.106878), more than the allowed 0.001" in result.stderr
    assert note in (pipeline_repo / "report.md").read_text()


def test_a_mistake_in_the_changes_gate_is_named_before_it_is_merged(pipeline_repo):
    gate = pipeline_repo / "regression_gate.yaml"
    gate.write_text(gate.read_text().replace("{max_increase: 0.001}", "{max_increase: lots}"))

    inject(pipeline_repo, "mae", 0.05)  # judged by main's gate all the same

    result = report(pipeline_repo)

    assert result.returncode == 2
    regression, error = result.stderr.splitlines()
    assert regression.startswith("regression: metrics/evaluate.json:mae rose by 0.05")
    assert error.startswith(
        "error: this change's regression_gate.yaml: metrics/evaluate.json:mae: "
    )
    text = (pipeline_repo / "report.md").read_text()
    assert "**Failed.** metrics/evaluate.json:mae rose by 0.05" in text
    assert "**Mistake:** this change's regression_gate.yaml: metrics/evaluate.json:mae" in text


REGRESSION_GATE = "metrics/evaluate.json:\n  mae: {max_increase: 0.001}\n"
EVERY_TASKS_GATE = REGRESSION_GATE + "  accuracy: {max_decrease: 0.01}\n"


def test_a_misspelt_metric_in_the_changes_gate_is_named_before_it_is_merged(pipeline_repo):
    gate = pipeline_repo / "regression_gate.yaml"
    gate.write_text(REGRESSION_GATE.replace("mae:", "maee:"))
    metric = report(pipeline_repo)
    gate.write_text(REGRESSION_GATE.replace("evaluate.json", "evalute.json"))
    file = report(pipeline_repo)

    assert metric.returncode == file.returncode == 2
    assert metric.stderr == (
        "error: regression_gate.yaml: metrics/evaluate.json:maee is recorded by "
        "neither revision; did you mean mae?\n"
    )
    assert file.stderr == (
        "error: regression_gate.yaml: metrics/evalute.json is no metrics file; did you mean "
        "metrics/evaluate.json?\n"
    )


def test_a_change_that_adds_another_tasks_allowance_is_no_mistake(pipeline_repo):
    gate = pipeline_repo / "regression_gate.yaml"
    gate.write_text(REGRESSION_GATE)
    run(["git", "commit", "-qam", "A regression's gate"], pipeline_repo)
    gate.write_text(EVERY_TASKS_GATE)

    result = report(pipeline_repo)

    assert result.returncode == 0, result.stderr
    assert "Regression gate passed: 1 metrics within their allowances" in result.stdout


def test_a_classifier_is_judged_on_its_own_metrics_not_on_a_regressors(pipeline_repo):
    (pipeline_repo / "params.yaml").write_text(yaml.safe_dump(CIRCLES, sort_keys=False))
    gate = pipeline_repo / "regression_gate.yaml"
    gate.write_text(REGRESSION_GATE)
    run(["dvc", "repro", "-q"], pipeline_repo)
    run(["git", "add", "-A"], pipeline_repo)
    run(["git", "commit", "-qm", "The course's circles, a regressor's gate"], pipeline_repo)

    judged_by_nothing = report(pipeline_repo)
    gate.write_text(EVERY_TASKS_GATE)  # the change adds a classifier's allowance
    judged_by_the_change = report(pipeline_repo)
    text = (pipeline_repo / "report.md").read_text()

    assert judged_by_nothing.returncode == 2
    assert judged_by_nothing.stderr == (
        "error: regression_gate.yaml names none of the metrics either revision records "
        "(`dvc metrics show` lists them): add allowances for them (docs/review.md)\n"
    )
    assert judged_by_the_change.returncode == 0, judged_by_the_change.stderr
    assert "Regression gate passed: 1 metrics within their allowances" in (
        judged_by_the_change.stdout
    )
    assert (
        "main's `regression_gate.yaml` names none of the metrics either revision records: "
        "this change's judges it." in text
    )
    assert row("metrics/evaluate.json:mae", "-", "-", "-", "rise <= 0.001", "not recorded").search(
        text
    )
    assert re.search(r"\| metrics/evaluate.json:accuracy \|.*\| \+0 \| fall <= 0.01 \| ok \|", text)


def test_a_workspace_whose_results_are_out_of_date_is_reported_but_not_judged(pipeline_repo):
    params = pipeline_repo / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.01", "lr: 0.001"))
    inject(pipeline_repo, "mae", 0.05)  # a regression, which is not judged either
    summary = pipeline_repo.parent / "summary.md"

    result = report(pipeline_repo, "main", "--summary", str(summary))

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "error: the workspace's results are out of date (stage 'train': changed deps: "
        "params.yaml (modified train.lr)"
    )
    assert line.endswith("run `dvc repro`, then the report")
    for text in ((pipeline_repo / "report.md").read_text(), summary.read_text()):
        assert "**Not judged:** the workspace's results are out of date" in text
        assert row("params.yaml", "train.lr", "0.01", "0.001").search(text)
        assert "regressed" not in text


def test_the_change_that_adds_the_first_gate_is_judged_by_it(pipeline_repo):
    run(["git", "rm", "-q", "--cached", "regression_gate.yaml"], pipeline_repo)
    run(["git", "commit", "-q", "-m", "No gate yet"], pipeline_repo)
    inject(pipeline_repo, "mae", 0.05)

    result = report(pipeline_repo)

    assert result.returncode == 1
    text = (pipeline_repo / "report.md").read_text()
    assert "main has no `regression_gate.yaml` yet: this change's judges it." in text


def test_report_refuses_an_unknown_base_in_one_line(pipeline_repo):
    result = report(pipeline_repo, base="no-such-branch")

    assert result.returncode == 2
    assert result.stderr.startswith("error: --base no-such-branch: not a git revision")
    assert len(result.stderr.splitlines()) == 1
    assert not (pipeline_repo / "report.md").exists()


@pytest.mark.parametrize(
    ("loss_csv", "problem"),
    [
        (b"\xff\xfeepoch,train_loss,test_loss\n", "not UTF-8 text (invalid start byte at byte 0)"),
        (b"epoch,train_loss,test_loss\n0,0.5,0.6\n1,n/a,0.5\n", "line 3: train_loss is 'n/a'"),
    ],
    ids=["not-utf8", "text-in-a-number-column"],
)
def test_report_names_a_broken_loss_table_in_one_line(pipeline_repo, loss_csv, problem):
    (pipeline_repo / "plots/loss.csv").write_bytes(loss_csv)
    record_in_lock(pipeline_repo, "plots/loss.csv")

    result = report(pipeline_repo)

    assert result.returncode == 2
    assert result.stderr.startswith("error: plots/loss.csv (workspace)")
    assert problem in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (pipeline_repo / "report.md").exists()


def lock_check(repo: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "tools.lock_check"], repo, check=False)


def test_lock_check_refuses_uncommitted_changes_and_rewrites_nothing(pipeline_repo):
    params = pipeline_repo / "params.yaml"
    params.write_text(params.read_text().replace("log_every: 10", "log_every: 20"))
    (pipeline_repo / "predictions.csv").write_text("x,prediction\n")  # untracked: not named
    before = workspace_files(pipeline_repo)

    result = lock_check(pipeline_repo)

    assert result.returncode == 2
    assert result.stderr.startswith("error: uncommitted changes (params.yaml): ")
    assert "commit or stash them first" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert workspace_files(pipeline_repo) == before


def test_lock_check_names_the_yaml_problem_of_a_committed_lock(pipeline_repo):
    lock = pipeline_repo / "dvc.lock"
    lock.write_text(lock.read_text() + "  prepare: [\n")
    run(["git", "commit", "-q", "-am", "A lock cut short"], pipeline_repo)

    result = lock_check(pipeline_repo)

    assert result.returncode == 2
    assert re.fullmatch(
        r"error: dvc\.lock is not valid YAML: expected the node content, but found "
        r"'<stream end>' \(line \d+, column 1\): fix it, or restore a good one from git\n",
        result.stderr,
    )
    assert not run(["git", "status", "--porcelain"], pipeline_repo).stdout


def test_lock_check_passes_when_repro_changes_nothing(pipeline_repo):
    (pipeline_repo / "predictions.csv").write_text("x,prediction\n")  # a user's own file

    result = make(["lock-check"], pipeline_repo)

    assert "Reproduces byte for byte: `dvc repro` changed no committed file." in result.stdout


def test_lock_check_makes_again_what_a_working_checkout_already_holds(pipeline_repo):
    # A better number, recorded in dvc.lock as if the pipeline had made it: every output is in
    # the workspace and up to date, so a plain `dvc repro` would run nothing.
    inject(pipeline_repo, "mae", -0.01)
    run(["git", "commit", "-q", "-am", "A better number"], pipeline_repo)

    result = make(["lock-check"], pipeline_repo, check=False)

    assert result.returncode != 0
    assert "Does not reproduce: metrics/evaluate.json:mae beyond the tolerance." in result.stderr


def test_lock_check_names_each_stale_stage_down_to_the_param(pipeline_repo):
    # A param changed and a metric edited by hand, committed without rerunning the pipeline.
    params = pipeline_repo / "params.yaml"
    text = params.read_text().replace("log_every: 10", "log_every: 20")
    params.write_text(text.replace("optimizer_options: {}", "optimizer_options: {momentum: 0.9}"))
    inject(pipeline_repo, "mae", -0.01, by_hand=True)
    pipeline = pipeline_repo / "dvc.yaml"
    pipeline.write_text(
        pipeline.read_text().replace("python -m stages.export", "python -m stages.export -X")
    )
    run(["git", "commit", "-q", "-am", "Log less often, and a better number"], pipeline_repo)

    result = make(["lock-check"], pipeline_repo, check=False)

    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert line.startswith("Does not reproduce: the commit is stale: ")
    assert (
        "stage 'train': changed deps: params.yaml (modified train.log_every; added "
        "train.optimizer_options.momentum)" in line
    )
    assert "stage 'evaluate': changed outs: metrics/evaluate.json (modified)" in line
    assert re.search(r"stage 'export': [^|]*changed command", line)
    assert "stage 'prepare'" not in line and "stage 'split'" not in line


def test_outputs_left_from_another_commit_are_made_again_not_called_stale(pipeline_repo):
    # A `git checkout` of a commit with another model, without `dvc checkout`.
    set_params(pipeline_repo, train__epochs=7)
    run(["dvc", "repro", "-q"], pipeline_repo)
    run(["git", "stash", "-q"], pipeline_repo)

    report_result = report(pipeline_repo)
    release = make(["release", "VERSION=v1.0.0"], pipeline_repo, check=False)
    result = lock_check(pipeline_repo)

    assert report_result.returncode == 2
    assert report_result.stderr.startswith("error: the workspace's results are out of date (")
    assert report_result.stderr.endswith(
        "run `dvc checkout` (`dvc pull` where the cache lacks them), then the report\n"
    )
    assert "error: the workspace's outputs are not those dvc.lock records (stage 'train': " in (
        release.stderr
    )
    assert "run `dvc checkout` (`dvc pull` where" in release.stderr
    assert "pushed" not in release.stdout
    assert result.returncode == 0, result.stderr
    assert "Reproduces byte for byte" in result.stdout


def test_own_data_left_from_another_commit_is_named_with_its_checkout(pipeline_repo):
    # A CSV that `dvc add` tracks, and a `git checkout` without `dvc checkout`.
    data = pipeline_repo / "data/raw/mine.csv"
    data.write_text((pipeline_repo / "data/raw/houses.csv").read_text())
    run(["dvc", "add", "-q", "data/raw/mine.csv"], pipeline_repo)
    set_params(
        pipeline_repo, data__source="csv", data__path="data/raw/mine.csv", data__target="price"
    )
    run(["dvc", "repro", "-q"], pipeline_repo)
    run(["git", "add", "-A"], pipeline_repo)
    run(["git", "commit", "-qm", "Our own data"], pipeline_repo)
    data.write_text(data.read_text().replace("411.5", "412.5", 1))
    run(["dvc", "add", "-q", "data/raw/mine.csv"], pipeline_repo)  # another commit's data
    run(["git", "checkout", "-q", "data/raw/mine.csv.dvc"], pipeline_repo)

    report_result = report(pipeline_repo)
    result = lock_check(pipeline_repo)
    run(["dvc", "checkout", "-q", "data/raw/mine.csv"], pipeline_repo)

    assert report_result.stderr.endswith(
        "run `dvc checkout` (`dvc pull` where the cache lacks them), then the report\n"
    )
    assert result.returncode == 2 and result.stderr == (
        "error: data/raw/mine.csv: not the data the commit's .dvc file records: `dvc checkout "
        "data/raw/mine.csv` (`dvc pull` where the cache lacks it) to check the commit, or "
        "`dvc add` and commit yours, first\n"
    )
    assert run(["dvc", "status", "-q"], pipeline_repo, check=False).returncode == 0


def test_a_stage_rerun_alone_and_committed_is_stale_not_a_checkout_away(pipeline_repo):
    # dvc.lock then disagrees with itself: split records the old data, prepare the new.
    set_params(pipeline_repo, data__noise_std=0.01)
    run(["dvc", "repro", "-q", "--single-item", "prepare"], pipeline_repo)
    run(["git", "commit", "-qam", "New data; the later stages not rerun"], pipeline_repo)

    result = lock_check(pipeline_repo)

    assert result.returncode == 1
    assert result.stderr.startswith("Does not reproduce: the commit is stale: ")
    assert "stage 'split': changed deps: data/dataset.parquet (modified)" in result.stderr


def committed_elsewhere(repo: Path, relative_change: float) -> None:
    """Commit results as another machine would have made them: the last test loss off by
    `relative_change` (in plots/loss.csv and in DVCLive's files), and train.json saying arm64."""
    losses = repo / "plots/loss.csv"
    lines = losses.read_text().splitlines()
    epoch, train_loss, test_loss = lines[-1].split(",")
    elsewhere = repr(float(test_loss) * (1 + relative_change))
    lines[-1] = f"{epoch},{train_loss},{elsewhere}"
    trained = (repo / "metrics/train.json").read_text().replace('"x86_64"', '"aarch64"')
    live = {
        name: (repo / name).read_text().replace(test_loss, elsewhere)
        for name in ("dvclive/metrics.json", "dvclive/plots/metrics/test_loss.tsv")
    }
    assert all(elsewhere in text for text in live.values())
    commit_results(
        repo,
        {"plots/loss.csv": "\n".join(lines) + "\n", "metrics/train.json": trained, **live},
        every_output_here=True,
    )


def commit_results(
    repo: Path, results: dict[str, str | bytes], every_output_here: bool = False
) -> None:
    """Commit these contents of results files, the lock recording their hashes. Then drop the
    DVC cache (and its run cache) and the model's outputs, as in a fresh clone, so `dvc repro`
    trains again; the data stay, as numpy made them the same everywhere."""
    import shutil

    for name, content in results.items():
        (repo / name).write_bytes(content.encode() if isinstance(content, str) else content)
    if every_output_here:  # DVC records them all, a folder (DVCLive's) hashed its own way
        run(["dvc", "commit", "-q", "-f"], repo)
    else:
        record_in_lock(repo, *results)
    run(["git", "commit", "-q", "-am", "Results made elsewhere"], repo)
    shutil.rmtree(repo / ".dvc/cache")
    # A fresh clone has what git keeps (metrics, plots, DVCLive's files), not what DVC caches.
    in_git = run(["git", "ls-files"], repo).stdout.splitlines()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("train", "evaluate", "export"):
        for out in lock["stages"][stage]["outs"]:
            path = repo / out["path"]
            if not any(
                name == out["path"] or name.startswith(out["path"] + "/") for name in in_git
            ):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def test_lock_check_passes_within_the_tolerance_and_names_the_platform(pipeline_repo):
    committed_elsewhere(pipeline_repo, relative_change=3e-7)

    result = make(["lock-check"], pipeline_repo)

    assert (
        "Reproduces within the declared tolerance (tolerances.yaml): the largest relative "
        "difference is 3e-07, in plots/loss.csv:test_loss.99; machine aarch64 there, "
        "x86_64 here." in result.stdout
    )


def test_lock_check_fails_beyond_the_tolerance_naming_the_number(pipeline_repo):
    committed_elsewhere(pipeline_repo, relative_change=0.01)

    result = make(["lock-check"], pipeline_repo, check=False)

    assert result.returncode != 0
    assert "Does not reproduce: plots/loss.csv:test_loss.99 beyond the tolerance." in result.stderr


def test_lock_check_fails_on_a_picture_or_a_result_file_the_commit_does_not_hold(pipeline_repo):
    # Every recorded number as committed, but a picture the pipeline does not draw, and a
    # metrics file deleted from git (the pipeline makes it again).
    run(["git", "rm", "-q", "metrics/evaluate.json"], pipeline_repo)
    picture = (pipeline_repo / "plots/loss.png").read_bytes() + b"edited"
    commit_results(pipeline_repo, {"plots/loss.png": picture})

    result = make(["lock-check"], pipeline_repo, check=False)

    assert result.returncode != 0
    assert (
        "Does not reproduce: metrics/evaluate.json is not in the commit, plots/loss.png changed."
        in result.stderr
    )
