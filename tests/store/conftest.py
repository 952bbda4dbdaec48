"""Fixtures for the store tests: a dynalite server on loopback and one store per backend."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from opsforge_core.config import Settings
from opsforge_core.store.dynamodb import DynamoDBStore
from opsforge_core.store.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT, free_port

DYNALITE = REPO_ROOT / "node_modules" / ".bin" / "dynalite"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never fall back to the instance metadata address for credentials.
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Dynalite:
    """A running dynalite process and where it keeps its data."""

    port: int
    path: Path
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not DYNALITE.exists():
            _install_dynalite()
        self.process = subprocess.Popen(
            [
                str(DYNALITE),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--path",
                str(self.path),
                "--createTableMs",
                "10",
                "--deleteTableMs",
                "10",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.process)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self, max_attempts: int = 3) -> object:
        config = Config(
            region_name="us-east-1",
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=2,
            read_timeout=10,
        )
        # botocore reads credentials when it builds the client, so the dummy ones need to be
        # in the environment only for this call.
        with dummy_credentials():
            return boto3.session.Session().client(
                "dynamodb", endpoint_url=self.endpoint, config=config
            )


def _install_dynalite() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("dynalite is not installed and npm is missing; install Node.js and npm")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=REPO_ROOT, check=True
    )


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"dynalite exited with {process.returncode}: {error}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"dynalite did not listen on port {port} within {timeout} s")


@contextmanager
def dummy_credentials() -> Iterator[None]:
    """Set dummy AWS credentials, so boto3 signs requests and never looks for real ones.

    The previous values come back afterwards: other test folders check how the LLM provider
    is chosen from the credentials present.
    """
    saved = {name: os.environ.get(name) for name in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def aws_env() -> Iterator[None]:
    with dummy_credentials():
        yield


@pytest.fixture(scope="session")
def dynalite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dynalite]:
    server = Dynalite(free_port(), tmp_path_factory.mktemp("dynalite"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynalite_client(dynalite: Dynalite) -> object:
    return dynalite.client()


def dynamodb_store(client: object, endpoint: str, prefix: str | None = None) -> DynamoDBStore:
    """A store on fresh tables: each test gets its own table prefix."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}-"
    settings = Settings(store="dynamodb", dynamodb_endpoint=endpoint, table_prefix=prefix)
    return DynamoDBStore(client, settings.table_names, settings.feed_ttl_hours, endpoint)


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if backend == "sqlite":
        created = SQLiteStore(tmp_path / "data" / "opsforge.db")
    else:
        server = request.getfixturevalue("dynalite")
        created = dynamodb_store(request.getfixturevalue("dynalite_client"), server.endpoint)
    created.init()
    yield created
    created.close()
