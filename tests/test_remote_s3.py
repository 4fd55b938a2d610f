"""An S3 remote on a real S3 server (SeaweedFS on 127.0.0.1), set up as the README says."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    CORRUPTED_BYTES,
    COURSE_LOG,
    assert_pull_refused_the_corrupted_model,
    clone_copy,
    git_clone,
    remote_object,
    run,
    tool_env,
    workspace_files,
)
from tests.seaweedfs import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SeaweedFS, start_seaweedfs

pytestmark = pytest.mark.slow

BUCKET = "pipeline-data"
NO_AWS_FILE = "/nonexistent/aws-config"


def s3_env(credentials: bool = True, **extra: str) -> dict[str, str]:
    """DVC's environment: none of this machine's AWS settings; the test credentials if asked."""
    env = {name: value for name, value in tool_env().items() if not name.startswith("AWS_")}
    # No AWS files of this machine (botocore skips a file that does not exist, and refuses
    # /dev/null), and never the EC2 metadata service when credentials are missing: every
    # request goes to the test server.
    env["AWS_CONFIG_FILE"] = NO_AWS_FILE
    env["AWS_SHARED_CREDENTIALS_FILE"] = NO_AWS_FILE
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if credentials:
        env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY_ID
        env["AWS_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    return env | extra


def use_s3_remote(repo: Path, url: str, endpoint: str) -> None:
    """The README's commands: an S3 remote as the default, its settings (not secrets) committed."""
    for command in (
        ["dvc", "remote", "add", "--default", "s3", url],
        ["dvc", "remote", "modify", "s3", "endpointurl", endpoint],
        ["dvc", "remote", "modify", "s3", "verify", "true"],
        ["git", "commit", "-q", "-m", "Use an S3 remote", ".dvc/config"],
    ):
        run(command, repo)


def run_cache_entries(repo: Path) -> list[str]:
    runs = repo / ".dvc/cache/runs"
    return sorted(str(path.relative_to(runs)) for path in runs.rglob("*") if path.is_file())


def assert_trained_nothing(output: str) -> None:
    assert "Running stage" not in output
    assert COURSE_LOG[0] not in output


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), [BUCKET])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_pushed(reproduced, seaweedfs, tmp_path_factory) -> Path:
    """A reproduced copy that pushed its outputs and run-cache to S3. Do not modify."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("s3-pushed") / "repo")
    use_s3_remote(repo, f"s3://{BUCKET}/pytorch-workflow", seaweedfs.endpoint)
    run(["dvc", "push", "--run-cache"], repo, env=s3_env())
    return repo


def test_fresh_clone_pulls_byte_identical_outputs_with_credentials_in_config_local(
    s3_pushed, tmp_path
):
    clone = git_clone(s3_pushed, tmp_path / "clone")
    no_credentials = s3_env(credentials=False)

    refused = run(["dvc", "pull"], clone, check=False, env=no_credentials)
    for key, value in (("access_key_id", ACCESS_KEY_ID), ("secret_access_key", SECRET_ACCESS_KEY)):
        run(["dvc", "remote", "modify", "--local", "s3", key, value], clone)
    run(["dvc", "pull"], clone, env=no_credentials)

    assert refused.returncode != 0 and "Unable to locate credentials" in refused.stderr
    assert workspace_files(clone) == workspace_files(s3_pushed)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    assert_trained_nothing(run(["dvc", "repro"], clone).stdout)
    # The credentials live in .dvc/config.local, which git ignores, not in .dvc/config.
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], clone).stdout == ""
    assert SECRET_ACCESS_KEY in (clone / ".dvc/config.local").read_text()
    assert SECRET_ACCESS_KEY not in (clone / ".dvc/config").read_text()


def test_fresh_clone_pull_with_run_cache_gets_the_run_records_and_trains_nothing(
    s3_pushed, tmp_path
):
    clone = git_clone(s3_pushed, tmp_path / "clone")

    run(["dvc", "pull", "--run-cache"], clone, env=s3_env())
    repro = run(["dvc", "repro"], clone, env=s3_env())

    assert run_cache_entries(s3_pushed) != []
    assert run_cache_entries(clone) == run_cache_entries(s3_pushed)
    assert_trained_nothing(repro.stdout)
    assert workspace_files(clone) == workspace_files(s3_pushed)


def test_fresh_clone_repro_pull_downloads_outputs_instead_of_training(s3_pushed, tmp_path):
    clone = git_clone(s3_pushed, tmp_path / "clone")

    repro = run(["dvc", "repro", "--pull"], clone, env=s3_env())

    assert_trained_nothing(repro.stdout)
    assert "Data and pipelines are up to date" in repro.stdout
    assert workspace_files(clone) == workspace_files(s3_pushed)
    assert run(["git", "status", "--porcelain"], clone).stdout == ""


def test_object_corrupted_on_s3_never_reaches_the_workspace(reproduced, seaweedfs, tmp_path):
    source = clone_copy(reproduced[0], tmp_path / "source")
    use_s3_remote(source, f"s3://{BUCKET}/corrupted", seaweedfs.endpoint)
    run(["dvc", "push"], source, env=s3_env())
    # Other bytes under the model's key, as a bad upload or a failing disk would leave them.
    key = f"{BUCKET}/corrupted/{remote_object(source, 'models/model.pt')}"
    seaweedfs.client().pipe(key, CORRUPTED_BYTES)
    clone = git_clone(source, tmp_path / "clone")

    pull = run(["dvc", "pull"], clone, check=False, env=s3_env())

    assert_pull_refused_the_corrupted_model(pull, clone, source)


@pytest.fixture
def stoppable_seaweedfs(tmp_path) -> Iterator[SeaweedFS]:
    """A server of its own for a test that stops it; stopped here too if the test fails."""
    server = start_seaweedfs(tmp_path / "seaweedfs", [BUCKET])
    yield server
    server.stop()


def test_remote_that_is_down_fails_clearly_and_changes_nothing(
    reproduced, stoppable_seaweedfs, tmp_path
):
    source = clone_copy(reproduced[0], tmp_path / "source")
    use_s3_remote(source, f"s3://{BUCKET}/pytorch-workflow", stoppable_seaweedfs.endpoint)
    run(["dvc", "push"], source, env=s3_env())
    clone = git_clone(source, tmp_path / "clone")
    stoppable_seaweedfs.stop()
    before = workspace_files(clone)

    # botocore retries a refused connection with back-off for about 40 s before it gives the
    # same error; one attempt keeps the test short.
    pull = run(["dvc", "pull"], clone, check=False, env=s3_env(AWS_MAX_ATTEMPTS="1"))

    assert pull.returncode != 0
    endpoint = stoppable_seaweedfs.endpoint
    assert f'Could not connect to the endpoint URL: "{endpoint}/' in pull.stderr
    assert "Traceback" not in pull.stderr
    assert workspace_files(clone) == before
