import base64
import json
from pathlib import Path

from pytorch_workflow.experiments import CELERY_DIR, drop_stale_stop_requests


def write_request(inbox: Path, name: str, method: str) -> Path:
    """A control message as kombu's filesystem transport stores it."""
    body = json.dumps({"method": method, "arguments": {}, "destination": None})
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-type": "application/json",
        "properties": {"body_encoding": "base64"},
    }
    path = inbox / f"{name}.dvc-exp-abc123-1@localhost.celery.pidbox.msg"
    path.write_text(json.dumps(envelope))
    return path


def test_only_stop_requests_are_dropped_from_the_queue(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inbox = CELERY_DIR / "broker" / "in"
    inbox.mkdir(parents=True)
    stop = write_request(inbox, "1_a", "shutdown")
    ping = write_request(inbox, "2_b", "active")
    task = inbox / "3_c.celery.msg"
    task.write_text("{}")
    unreadable = inbox / "4_d.dvc-exp-abc123-2@localhost.celery.pidbox.msg"
    unreadable.write_text("not json")

    assert drop_stale_stop_requests() == 1

    assert not stop.exists()
    assert ping.exists() and task.exists() and unreadable.exists()


def test_a_repository_without_a_queue_has_nothing_to_drop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert drop_stale_stop_requests() == 0
