"""`make run` as a new user meets it: the service comes up on embedded defaults (and on
PostgreSQL + Redis when the suite runs against them), serves the sign-in page with a
demo login for every role, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from sde.identity.roles import Role

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, "not answering yet"  # still starting, or a busy machine


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(SDE_VAR_DIR=str(tmp_path / "var"), SDE_PORT=str(_free_port()))
    database = None
    if connection.vendor == "postgresql":
        settings = connection.settings_dict
        database = f"sde_makerun_{os.getpid()}"
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}"')
            cursor.execute(f'CREATE DATABASE "{database}"')
        env["DATABASE_URL"] = (
            f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{database}"
        )
        env["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11")
    yield env
    if database:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_make_run_serves_the_site_and_ctrl_c_stops_everything(run_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=REPO,
        env=run_env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{run_env['SDE_PORT']}"
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail("make run exited early:\n" + "".join(output[-40:]))
            output.append(line)
            if "Sign in with a username" in line:
                break
        banner = "".join(output)
        assert f"running at {base}/" in banner
        for username in [
            "admin",
            "researcher",
            "ig.officer",
            "caldicott",
            "checker",
            "custodian",
            "clinician",
        ]:
            assert re.search(rf"\b{re.escape(username)}\b", banner), username
        for role in Role:
            assert role.label.split(" ")[0] in banner, role
        status, body = 0, ""
        while time.monotonic() < deadline:
            status, body = _get(f"{base}/healthz")
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, body
        assert '"broker": "ok"' in body and '"database": "ok"' in body
        while time.monotonic() < deadline:
            status, body = _get(f"{base}/accounts/login/")
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200 and "Demo accounts" in body and "DEMO" in body
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("make run did not stop on Ctrl-C within 60 s")
    leftover = ""
    for _ in range(40):  # children may take a moment to finish their own shutdown
        # The script's process group (web server), and the worker by its own folder: the
        # worker runs in a session of its own.
        leftover = "\n".join(
            subprocess.run(["pgrep", "-a", *match], capture_output=True, text=True).stdout.strip()
            for match in (["-g", str(process.pid)], ["-f", run_env["SDE_VAR_DIR"]])
        ).strip()
        if not leftover:
            break
        time.sleep(0.5)
    assert leftover == "", f"processes left running after Ctrl-C: {leftover}"
