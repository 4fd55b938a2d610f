"""Every command the README and docs/ show is run by a test, as a user types it.

The commands of the pages' ```bash blocks run here, the README's first, in order, in one copy of
the repository reproduced with its committed params, with the placeholders filled in (an
experiment's name for NAME, a CSV for ~/my.csv). The few that need more than a repository run in
the test named for them; the rest are not run by any test, each for the reason given. A command
added to a page without a place here fails this test.
"""

import importlib
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import COURSE_LOG, REPO_ROOT, run
from tests.helpers import documented_commands

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

# Run in the test named, which fills in what a test repository lacks (a server, a remote): the
# test, then the beginnings of the commands it runs.
ELSEWHERE = {
    "test_pipeline.py::test_fresh_clone_reproduces_the_committed_lock_and_metrics": [
        "make repro",
    ],
    "test_own_data.py::test_the_readme_example_is_the_regression_recipe_and_predicts": [
        "dvc exp run -S data.source=csv -S data.path=data/raw/houses.csv",
    ],
    "test_own_data.py::"
    "test_the_documented_classification_recipe_reaches_the_baseline_and_predicts_probabilities": [
        "dvc exp run -S task=binary_classification",
    ],
    "test_experiments.py::test_a_sweep_runs_one_experiment_per_combination": [
        "dvc exp run --queue",
        "dvc exp run --run-all",
    ],
    "test_bad_inputs.py::"
    "test_a_stage_that_fails_under_dvc_repro_loses_its_outputs_and_dvc_checkout_restores_them": [
        "git show HEAD:./params.yaml > params.yaml",
        "git checkout -- dvc.lock metrics plots dvclive",
        "dvc checkout",
    ],
    # docs/registry.md runs as a whole, against a git server and a shared DVC remote.
    "test_registry.py::test_the_registry_page_releases_shares_and_fetches_through_a_git_server": [
        "make release",
        "git push origin linear-regression",
        "gto ",
        "dvc artifacts get",
        "python -m pytorch_workflow.predict new_x.csv predictions.csv --",
    ],
    "test_remote_local.py::test_fresh_clone_pulls_byte_identical_outputs_from_a_shared_folder": [
        "dvc remote modify --local local url",
    ],
    "test_remote_s3.py::test_fresh_clone_repro_pull_downloads_outputs_instead_of_training": [
        "dvc remote add --default s3",
        "dvc remote modify s3",
        'git commit -m "Data and models on S3" .dvc/config',
    ],
    "test_remote_s3.py::"
    "test_fresh_clone_pulls_byte_identical_outputs_with_credentials_in_config_local": [
        "dvc remote modify --local s3",
    ],
    "test_review.py::test_lock_check_passes_when_repro_changes_nothing": ["make lock-check"],
    # On the course's circles, with their params committed first (docs/experiments.md).
    "test_chapter02.py::test_the_documented_sequence_of_circle_models_prints_the_course_numbers": [
        "dvc exp run -n circle-v",
        "dvc exp run -n wider-v2",
        "dvc exp show --md --drop",
    ],
    "test_review.py::test_report_on_a_branch_shows_the_param_metric_and_loss_diff_against_main": [
        "make report BASE=main",
    ],
    "test_distributed.py::test_two_machines_on_loopback_train_together_and_each_writes_the_model": [
        "export PET_NNODES=2",
        "python -m stages.train",
    ],
}
# Not run by any test, and why.
NOT_RUN = {
    "make test": "it is the test suite; CI runs it (.ci/run)",
    "source .venv/bin/activate": "the tests run with the environment's tools first on PATH",
    "make setup-s3": "make test installs requirements-s3.txt itself (setup-test)",
}


def place(command: str) -> str:
    """Where a command runs: 'here', a test's name, or the reason it runs nowhere."""
    for test, prefixes in ELSEWHERE.items():
        if any(command.startswith(prefix) for prefix in prefixes):
            return test
    for prefix, reason in NOT_RUN.items():
        if command.startswith(prefix):
            return f"not run: {reason}"
    return "here"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_runs_somewhere_and_every_named_test_exists(page):
    for command in documented_commands(page):
        where = place(command)
        if "::" in where:
            module, name = where.split("::")
            tests = importlib.import_module(f"tests.{module.removesuffix('.py')}")
            assert callable(getattr(tests, name, None)), f"{command}: {where} does not exist"


# What a page's commands need that a repository lacks.
FILLED_IN = {"~/my.csv": "../my.csv", "/path/to/shared/folder": "../shared"}


def fill_in(command: str, experiments: list[str]) -> str:
    for placeholder, value in FILLED_IN.items():
        command = command.replace(placeholder, value)
    names = iter(experiments)
    return re.sub(r"\bNAME\d?\b", lambda _: next(names), command)


def experiment_names(repo: Path) -> list[str]:
    listed = run(["dvc", "exp", "list", "--name-only"], repo).stdout.split()
    return listed + listed


@pytest.mark.slow
def test_the_commands_of_every_page_run_in_order_in_one_repository(committed_repo, tmp_path):
    """As a reader goes: the README, then docs/; a command already run is not run again."""
    repo = committed_repo
    shutil.copy(REPO_ROOT / "data/raw/houses.csv", tmp_path / "my.csv")
    done: set[str] = set()
    for page in PAGES:
        for command in documented_commands(page):
            if place(command) != "here" or command in done:
                continue
            done.add(command)
            filled = fill_in(command, experiment_names(repo) if "NAME" in command else [])
            result = run(["sh", "-c", filled], repo, check=False)
            assert result.returncode == 0, (
                f"{page.name}: {filled}\n{result.stdout[-2000:]}{result.stderr}"
            )
    assert len(done) >= 15
    # What the commands leave behind is committed or ignored: `dvc plots show`'s page is ignored.
    assert "dvc_plots/" not in run(["git", "status", "--porcelain"], repo).stdout


def test_the_shown_training_log_is_the_course_log():
    readme = (REPO_ROOT / "README.md").read_text()
    shown = re.findall(r"^Epoch: .*$", readme, re.MULTILINE)

    assert shown and set(shown) <= set(COURSE_LOG)


@pytest.mark.slow
def test_the_shown_error_is_what_dvc_exp_run_prints(committed_repo):
    readme = (REPO_ROOT / "README.md").read_text()
    command, *shown = re.search(
        r"^\$ (dvc exp run .*)\n(error: .*)\n(ERROR: .*)$", readme, re.MULTILINE
    ).groups()

    result = run(command.split(), committed_repo, check=False)

    assert result.returncode == 255  # DVC's, as the README says; the stage's own is 2
    printed = result.stderr.splitlines()
    assert [line for line in printed if line in shown] == shown
