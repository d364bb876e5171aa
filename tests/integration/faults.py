"""Process-level faults for tests/integration/test_faults.py.

A throwaway PostgreSQL cluster and Redis server of our own, on free loopback ports in a
temporary folder (never the shared ones on 5432 and 6379: other sessions use them), and
the application's own processes against them: gunicorn serving ``sde.wsgi`` and Celery
workers, each a process group of its own, so that a fault is a SIGKILL of the real
process at a chosen moment.

The moment is made deterministic with the database's own locks, not with sleeps: the
test holds a lock the application's transaction will need at the point of interest (a
table lock, a row lock), waits until ``pg_stat_activity`` shows that transaction waiting
on it (so everything before that point has been executed, inside the open transaction),
and then kills. No product code has a test hook.

The states the scenarios start from (a project with extracts and a finished job, a
release request one review from release, an access request one approval from approved,
a second source drop) are built once per session by the real services, in a subprocess
(``python -m tests.integration.faults world ...``) against a template database; each
test gets a copy of that database and of its data root.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
TIMEOUT = 60.0  # seconds for a process to start or a state to show


def available() -> str | None:
    """Why the fault tests cannot run here (None when they can)."""
    if not PG_BIN:
        return "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
    if shutil.which("redis-server") is None:
        return "no redis-server on PATH"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, what: str, timeout: float = TIMEOUT,
    log: Callable[[], str] | None = None, interval: float = 0.05,
) -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\n--- log (tail) ---\n{log()[-4000:]}" if log else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


# --- PostgreSQL ---------------------------------------------------------------------------
class Postgres:
    """A cluster of our own: ``initdb -A trust``, started with ``pg_ctl`` on a free port.
    ``crash()`` SIGKILLs the postmaster and its backends, as a crash of the database
    server; ``start()`` brings it up again (with crash recovery)."""

    def __init__(self) -> None:
        # A folder of its own under /tmp: a socket path must be short (108 bytes), and
        # PostgreSQL refuses to run as root, so as root the cluster belongs to "postgres".
        self.root = Path(tempfile.mkdtemp(prefix="sdepg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.socket_dir = self.root
        self.port = free_port()
        self.bin = PG_BIN[-1]
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self.as_owner, str(self.bin / "initdb"), "-D", str(self.data), "-A",
                        "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")  # fmt: skip
        subprocess.run([*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                        str(self.log),
                        "-o", options, "-w", "-t", "60", "start"],
                       check=True, capture_output=True)  # fmt: skip

    def running(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def postmaster(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pid_file.read_text().splitlines()[0])
        return None

    def crash(self) -> None:
        """SIGKILL the postmaster and every backend: the server is gone mid-transaction."""
        pid = self.postmaster()
        assert pid is not None, "PostgreSQL is not running"
        doomed = [pid, *_children(pid)]
        for each in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)

        def gone() -> bool:
            return not any(Path(f"/proc/{p}").exists() and not _zombie(p) for p in doomed)

        wait_for(gone, what="the PostgreSQL processes to die")
        # A killed postmaster whose parent has gone stays a zombie where no init reaps it,
        # and a zombie's pid still "exists": PostgreSQL would take its lock file for a
        # live server. They are stale (so is the socket's); remove them.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for stale in self.socket_dir.glob(f".s.PGSQL.{self.port}*"):
            stale.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.postmaster() is not None:
            command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            subprocess.run([*self.as_owner, *command], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


# --- Redis --------------------------------------------------------------------------------
class Redis:
    """``redis-server --save '' --appendonly no`` on a free port: ``kill()`` is SIGKILL
    (what was queued in it is gone, as after a crash without persistence), ``pause()`` and
    ``resume()`` freeze it (SIGSTOP/SIGCONT: it accepts connections and never answers)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(self._answers, what="redis-server to answer")

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn,
        ):
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server dies as well
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


# --- The application's processes ----------------------------------------------------------
@dataclass
class Service:
    """One process group of ours (gunicorn, a Celery worker), logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole group (the gunicorn master and its workers; a worker and its
        sandbox): nothing runs a handler or a finally block."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()  # after the test: no state of theirs is needed any more


@dataclass
class Stack:
    """One test's installation: its own database (a copy of the world's), data root and
    var folder, the session's key folder, and a Redis of its own as the broker."""

    postgres: Postgres
    redis: Redis
    database: str
    folder: Path
    key_dir: Path
    services: list[Service] = field(default_factory=list)

    @property
    def data_root(self) -> Path:
        return self.folder / "data"

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("SDE_", "DATABASE_URL", "CELERY_", "DJANGO_"))}  # fmt: skip
        return {
            **keep,
            "DJANGO_SETTINGS_MODULE": "sde.settings",
            "SDE_ENV": "development",
            "SDE_DEBUG": "0",  # what a user sees: the error pages, not a traceback
            "SDE_SSL_REDIRECT": "0",
            "SDE_VAR_DIR": str(self.folder / "var"),
            "SDE_DATA_ROOT": str(self.data_root),
            "SDE_KEY_DIR": str(self.key_dir),
            "SDE_ATTACHMENT_ROOT": str(self.folder / "attachments"),
            "DATABASE_URL": self.postgres.url(self.database),
            "CELERY_BROKER_URL": self.redis.url,
            "SDE_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "SDE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None,
               port: int = 0) -> Service:  # fmt: skip
        log_path = self.folder / f"{name}-{len(self.services) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=REPO, env={**self.env(), **(env or {})}, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        service = Service(name, process, log_path, port)
        self.services.append(service)
        return service

    def web(self) -> Service:
        """gunicorn (one worker process, as few moving parts as a kill needs), answering."""
        port = free_port()
        # No control socket: its default path is one per user, shared with every other
        # gunicorn here, and one we SIGKILL would leave it stale.
        web = self._spawn("web", [str(Path(PYTHON).with_name("gunicorn")), "sde.wsgi",
                                  "--bind", f"127.0.0.1:{port}", "--workers", "1",
                                  "--threads", "4", "--timeout", "120",
                                  "--no-control-socket"], port=port)  # fmt: skip

        def answers() -> bool:
            if web.process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{web.log()[-4000:]}")
            return Browser(port).status("/accounts/login/") == 200

        wait_for(answers, what="gunicorn to answer", log=web.log)
        return web

    def worker(self, env: dict[str, str] | None = None, *, beat: bool = False) -> Service:
        """A Celery worker (solo pool); with ``beat``, the scheduler in it, as ``make run``."""
        name = f"fault-{len(self.services) + 1}"
        schedule = ["--beat", f"--schedule={self.folder / 'celerybeat-schedule'}"] if beat else []
        worker = self._spawn("worker", [str(Path(PYTHON).with_name("celery")), "-A", "sde",
                                        "worker", "--pool=solo", "--concurrency=1",
                                        "--loglevel=INFO", f"--hostname={name}@%h",
                                        "--without-gossip", "--without-mingle",
                                        "--without-heartbeat", *schedule], env=env)  # fmt: skip
        wait_for(lambda: re.search(rf"{name}@\S+ ready\.", worker.log()),
                 what="the worker to be ready", log=worker.log)  # fmt: skip
        return worker

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """``python ARGS`` in this installation's environment."""
        return subprocess.run(
            [PYTHON, *args], cwd=REPO, env={**self.env(), **(env or {})}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def verify_audit(self) -> subprocess.CompletedProcess[str]:
        """The product's own check: ``manage.py verify_audit`` (it records its result)."""
        return self.run("manage.py", "verify_audit")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.postgres.url(self.database), autocommit=True)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def events(self, *types: str, after: int = 0) -> list[tuple[str, str, str]]:
        """(event type, target type, target id) of the audit events after ``after``."""
        return [tuple(row) for row in self.rows(  # type: ignore[misc]
            "SELECT event_type, target_type, target_id FROM sde_auditevent "
            "WHERE sequence > %s AND (cardinality(%s::text[]) = 0 OR event_type = ANY(%s)) "
            "ORDER BY sequence", after, list(types), list(types))]  # fmt: skip

    def last_sequence(self) -> int:
        return int(self.rows("SELECT coalesce(max(sequence), 0) FROM sde_auditevent")[0][0])

    def waiting_on_lock(self, query_start: str) -> bool:
        """Whether a backend of this database is waiting for a lock while running a
        statement that starts with ``query_start``."""
        return bool(self.rows(
            "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND query LIKE %s", self.database, query_start + "%"))  # fmt: skip

    def activity(self) -> str:
        """This database's backends: what each runs and waits for (for a failure's message)."""
        return "\n".join(str(row) for row in self.rows(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 120) "
            "FROM pg_stat_activity WHERE datname = %s", self.database))  # fmt: skip

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()


@contextlib.contextmanager
def holding(stack: Stack, *statements: str) -> Iterator[psycopg.Connection[Any]]:
    """A transaction of the test's own that holds the locks ``statements`` take, until
    the block ends (then rolled back)."""
    conn = psycopg.connect(stack.postgres.url(stack.database))
    try:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        with contextlib.suppress(psycopg.Error):
            conn.close()


# --- A browser: cookies, CSRF, a request in the background --------------------------------
class Browser:
    def __init__(self, port: int, session: str = "") -> None:
        self.port = port
        self.cookies: dict[str, str] = {"sessionid": session} if session else {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                timeout: float = 30.0) -> tuple[int, str, str]:  # fmt: skip
        """(status, Location, body). Raises OSError/HTTPException when the server dies."""
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read().decode(errors="replace")
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.headers.get("Location", ""), data

    def status(self, path: str) -> int:
        try:
            return self.request("GET", path, timeout=5)[0]
        except (OSError, http.client.HTTPException):
            return 0

    def page(self, path: str) -> str:
        status, location, body = self.request("GET", path)
        assert status == 200, f"GET {path}: {status} {location}\n{body[-2000:]}"
        return body

    def post_form(self, page: str, action: str, form: dict[str, str]) -> tuple[int, str, str]:
        """GET ``page`` for the CSRF token, then POST ``form`` to ``action``."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.page(page))
        assert token, f"no form on {page}"
        return self.request("POST", action, {**form, "csrfmiddlewaretoken": token.group(1)})


@dataclass
class InFlight:
    """A request sent on a thread of its own: ``outcome`` is (status, location, body)
    or the exception the client saw (the server died before it answered)."""

    thread: threading.Thread
    outcome: list[Any]

    def result(self, timeout: float = 30.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request is still waiting"
        return self.outcome[0]


def in_background(send: Callable[[], Any]) -> InFlight:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(send())
        except (OSError, http.client.HTTPException) as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return InFlight(thread, outcome)


def text_of(page: str) -> str:
    """A page's visible words, one space apart (tags and scripts removed)."""
    page = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", page)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).strip()


# --- The world: built once per session by the real services (run in a subprocess) ---------
def build_world(out: Path, folder: Path) -> None:  # pragma: no cover - runs in a subprocess
    """Build the scenarios' starting states; write their ids (and session keys) to ``out``."""
    import django

    django.setup()
    from datetime import date

    from django.test import override_settings

    from access_requests.models import AccessRequest
    from sde.data import synth
    from sde.data.catalogue import register_standard_datasets
    from sde.data.ingestion import request_ingest, run_ingest
    from sde.identity.roles import Role
    from sde.projects import services as projects
    from sde.tasks import build_project_extracts_task
    from tests import scenarios
    from tests.conftest import verified_client
    from tests.unit.access_requests import builders as applications
    from tests.unit.outputs import builders as releases
    from tests.unit.sde.projects import builders

    def drop(path: Path, seed: int) -> Path:
        config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=150)
        people = synth.generate(patients=300, seed=seed, config=config,
                                tables=builders.DROP_TABLES)  # fmt: skip
        synth.write_drop(people, path)
        return path

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        custodian = scenarios.person(Role.DATA_CUSTODIAN)
        register_standard_datasets(by=custodian)
        first = drop(folder / "drop-1", seed=5)
        run_ingest(ingest=request_ingest(drop_dir=first, by=custodian, enqueue=False),
                   by=custodian)  # fmt: skip
        second = drop(folder / "drop-2", seed=6)  # a new drop, for the mid-ingest faults
        ig = scenarios.person(Role.IG_OFFICER)
        member = builders.researcher()
        organisation = scenarios.organisation()
        project = projects.create_project(
            title="Hypertension in North Place",
            lay_summary="Who is treated for high blood pressure, and who is missed.",
            organisation=organisation, scope=builders.SCOPE, start_date=date(2026, 1, 1),
            end_date=date(2027, 12, 31),
            members=[projects.MemberSpec(member, "principal_investigator")], by=ig,
        )  # fmt: skip
        assert build_project_extracts_task(project.pk) == "built"
        # A release request one review from release: the first checker's review submitted,
        # the second checker's decided on every file, waiting for its submit.
        job = releases.finish_job(project, member)
        request = releases.submitted(job, member)
        checker_1, checker_2 = releases.checker(), releases.checker()
        releases.review(request, checker_1)
        review = releases.review(request, checker_2, submit=False)
        # An access request one approval from approved: in review, one IG approval of two.
        applicant = applications.applicant(organisation)
        panel = applications.panel(2)
        application = applications.drive_to(
            applications.drafted(applicant, organisation, applications.answers(
                organisation, [(applicant, "principal_investigator", True)])),
            AccessRequest.Status.IN_REVIEW, by=panel,
        )  # fmt: skip
        application = applications.approve_by(application, panel.reviewers[0])
        assert application.status == AccessRequest.Status.IN_REVIEW
        signed_in = {"ig": panel.reviewers[1], "member": member, "checker": checker_2,
                     "custodian": custodian}  # fmt: skip
        sessions = {name: verified_client(user).session.session_key
                    for name, user in signed_in.items()}  # fmt: skip
    out.write_text(json.dumps({
        "custodian": custodian.pk, "project": project.pk, "member": member.pk,
        "job": job.pk, "release": request.pk, "review": review.pk, "checker": checker_2.pk,
        "release_files": list(request.files.values_list("pk", flat=True)),
        "application": application.pk, "approver": panel.reviewers[1].pk,
        "second_drop": str(second), "sessions": sessions,
    }))  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1] == "world":
        build_world(Path(sys.argv[2]), Path(sys.argv[3]))
