"""The sandbox (sde/analysis/sandbox.py) against hostile scripts, run directly: no database.

Each hostile script tries something and prints one line per attempt, ``BLOCKED <what>:
<error>`` or ``ESCAPED <what>: <what it got>``. A test asserts the run's outcome and limit,
that every attempt was blocked (and how), that no secret reached the log or the output
folder, and that nothing changed outside the output folder. Limits are small so the file
runs in seconds. Tests that need isolation (bubblewrap) are skipped, with the reason, on a
host that refuses it; tests that need the worker to be root (so that the sandbox runs as
nobody) are skipped otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from sde.analysis import sandbox

REFUSAL = sandbox.isolation_refusal()
isolated_only = pytest.mark.skipif(REFUSAL is not None, reason=f"no isolation: {REFUSAL}")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox becomes nobody only as root")
BOTH_MODES = pytest.mark.parametrize(
    "isolate", [pytest.param(True, marks=isolated_only, id="isolated"),
                pytest.param(False, id="unisolated")],
)  # fmt: skip
MiB = 1024**2
FAST = sandbox.Limits(cpu_seconds=5, memory_bytes=512 * MiB, processes=64, file_bytes=1 * MiB,
                      output_bytes=2 * MiB, log_bytes=256 * 1024, wall_seconds=20.0,
                      open_files=64)  # fmt: skip
SANDBOX_UID = sandbox.NOBODY if os.geteuid() == 0 else os.getuid()
# Every hostile script starts with this: where its output folder is (real paths when
# unisolated), and a way to report each attempt.
PRELUDE = """\
import json, os, sys
OUT = os.environ.get("SDE_SANDBOX_OUTPUT", "/output")
ARGS = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
def attempt(what, action):
    try:
        got = action()
    except OSError as error:
        print(f"BLOCKED {what}: {type(error).__name__} errno={error.errno}", flush=True)
    else:
        print(f"ESCAPED {what}: {str(got)[:300]}", flush=True)
def read(path):
    with open(path, "rb") as handle:
        return handle.read()
"""


@pytest.fixture(autouse=True)
def data_root() -> None:
    """No database here: replaces the analysis fixtures' autouse data root."""


# --- The sandbox's folders, and running a script in it ----------------------------------
@dataclass
class Ran:
    result: sandbox.SandboxResult
    log: str
    ticks: list[sandbox.SandboxResult]

    def attempts(self) -> dict[str, str]:
        """What each attempt ended as: "BLOCKED <error>" or "ESCAPED <what it got>"."""
        found = {}
        for line in self.log.splitlines():
            verdict, _, rest = line.partition(" ")
            if verdict in ("BLOCKED", "ESCAPED"):
                what, _, how = rest.partition(": ")
                found[what] = f"{verdict} {how}"
        return found


@dataclass
class Box:
    """A job's folders as the worker lays them out, next to things it must not reach: a
    secret key file and a database file (0600, in a 0700 folder), and another project's
    extract beside this project's."""

    base: Path
    secret: str = field(default_factory=lambda: f"sde-secret-{uuid.uuid4().hex}")
    token: str = field(default_factory=lambda: f"sde-test-{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        self.input = self.base / "extracts" / "project-1"
        self.other_extract = self.base / "extracts" / "project-2"
        self.secrets = self.base / "secrets"
        self.folder = self.base / "jobs" / "1" / "attempt-1"
        self.job, self.tmp = self.folder / "job", self.folder / "tmp"
        self.output, self.log = self.folder / "output", self.folder / "log.txt"
        for folder in (self.input, self.other_extract, self.job, self.tmp, self.secrets):
            folder.mkdir(parents=True)
        for folder in (self.base, self.base / "extracts", self.input, self.other_extract,
                       self.base / "jobs", self.base / "jobs" / "1", self.folder, self.job,
                       self.tmp):  # fmt: skip
            folder.chmod(0o755)
        if os.geteuid() == 0:
            os.chown(self.tmp, sandbox.NOBODY, sandbox.NOBODY)
        (self.input / "patients.parquet").write_text("this project's rows\n")
        (self.other_extract / "patients.parquet").write_text(f"another project: {self.secret}\n")
        for path in (self.input / "patients.parquet", self.other_extract / "patients.parquet"):
            path.chmod(0o644)
        self.secrets.chmod(0o700)
        self.key_file = self.secrets / "system.key"
        self.database_file = self.secrets / "sde.sqlite3"
        for path in (self.key_file, self.database_file):
            path.write_text(f"{path.name}: {self.secret}\n")
            path.chmod(0o600)
        sandbox.prepare_output(self.output)

    def run(
        self,
        code: str,
        *,
        args: dict[str, Any] | None = None,
        isolate: bool = True,
        limits: sandbox.Limits = FAST,
        cancelled: Callable[[], bool] | None = None,
        env: dict[str, str] | None = None,
    ) -> Ran:
        script = self.job / "script.py"
        script.write_text(PRELUDE + textwrap.dedent(code))
        script.chmod(0o644)
        spec = sandbox.SandboxSpec(
            argv=[sys.executable, "-s", "/job/script.py", self.token, json.dumps(args or {})],
            job_dir=self.job, output_dir=self.output, log_path=self.log, input_dir=self.input,
            limits=limits, isolate=isolate, env=env or {},
        )  # fmt: skip
        ticks: list[sandbox.SandboxResult] = []
        result = sandbox.run(spec, cancelled=cancelled, tick=ticks.append, tick_seconds=0.2)
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return Ran(result=result, log=log, ticks=ticks)

    def outside_output(self) -> dict[str, tuple[int, int, int]]:
        """Everything under the base folder except the output folder, the log and the
        script the test wrote: mode, and size and modification time of files, never
        following links."""
        seen = {}
        for folder, folders, files in os.walk(self.base):
            if Path(folder) == self.output:
                folders[:] = []
                continue
            for name in folders + files:
                path = Path(folder) / name
                if path in (self.output, self.log, self.job / "script.py"):
                    continue
                info = path.lstat()
                if stat.S_ISDIR(info.st_mode):  # its entries are listed themselves
                    seen[str(path)] = (info.st_mode, 0, 0)
                else:
                    seen[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns)
        return seen

    def output_contents(self) -> bytes:
        """The bytes of every regular file in the output folder (links are not followed)."""
        found = b""
        for folder, _, files in os.walk(self.output):
            for name in files:
                path = Path(folder) / name
                if stat.S_ISREG(path.lstat().st_mode):
                    found += path.read_bytes()
        return found


def sandbox_processes(token: str) -> list[str]:
    """The live processes of the sandbox's user that belong to this test (zombies, which
    the host's init reaps, are not processes any more). ``-ww``: the whole command line,
    where the token is, however long."""
    listed = subprocess.run(["ps", "-ww", "-u", str(SANDBOX_UID), "-o", "pid=,stat=,args="],
                            capture_output=True, text=True, check=False).stdout  # fmt: skip
    return [line for line in listed.splitlines()
            if token in line and not line.split()[1].startswith("Z")]  # fmt: skip


def wait_until_gone(token: str, *, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := sandbox_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    """A job's folders under the test's own folder (which others may not enter, as the
    data root should be), and, at teardown, no process of the test left (by pid)."""
    made = Box(tmp_path / "root")
    before = made.outside_output()
    yield made
    for line in sandbox_processes(made.token):
        os.kill(int(line.split()[0]), signal.SIGKILL)
    assert made.outside_output() == before, "something changed outside the output folder"


def assert_contained(box: Box, ran: Ran, *extra_secrets: str) -> None:
    """Nothing escaped: no attempt succeeded and no secret reached the log or outputs."""
    escaped = {what: how for what, how in ran.attempts().items() if how.startswith("ESCAPED")}
    assert not escaped, ran.log
    for secret in (box.secret, *extra_secrets):
        assert secret not in ran.log
        assert secret.encode() not in box.output_contents()


# --- A well-behaved script --------------------------------------------------------------
@BOTH_MODES
def test_a_script_reads_its_input_and_writes_its_output_and_its_usage_is_sampled(box, isolate):
    ran = box.run("""
        import time
        rows = read(os.environ.get("SDE_SANDBOX_INPUT", "/input") + "/patients.parquet")
        with open(OUT + "/table.csv", "wb") as table:
            table.write(rows * 1000)
        end = time.process_time() + 1.5  # usage is sampled: the last tick's may be short
        while time.process_time() < end:
            pass
        print("done", flush=True)
    """, isolate=isolate)  # fmt: skip

    result = ran.result
    assert (result.outcome, result.exit_code, result.limit) == ("exited", 0, None), ran.log
    assert result.isolated is isolate
    assert (box.output / "table.csv").read_bytes() == b"this project's rows\n" * 1000
    assert result.output_bytes == 20_000 and result.log_bytes == len("done\n")
    assert result.cpu_seconds >= 0.5 and result.max_rss_kb > 1000
    assert ran.ticks and {tick.outcome for tick in ran.ticks} == {"running"}
    assert max(tick.cpu_seconds for tick in ran.ticks) > 0


@root_only
@BOTH_MODES
def test_the_output_folder_is_writable_when_every_folder_above_it_is_open(isolate):
    # Regression: a needed folder closed to others (the output folder, 0700 and owned by
    # nobody) was itself covered by the empty tmpfs meant for closed ancestors, so nothing
    # could be written. The test's own folder is closed, which hid it: this one is open.
    base = Path(tempfile.mkdtemp(prefix="sde-sandbox-"))
    try:
        base.chmod(0o755)
        made = Box(base / "root")
        ran = made.run('open(OUT + "/table.csv", "w").write("a,b\\n1,2\\n")', isolate=isolate)

        assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
        assert (made.output / "table.csv").read_text() == "a,b\n1,2\n"
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


# --- No network, loopback included ------------------------------------------------------
@dataclass
class Listeners:
    """Sockets on the host that the sandbox tries to reach; none may hear from it."""

    tcp: list[socket.socket] = field(default_factory=list)
    udp: list[socket.socket] = field(default_factory=list)
    targets: list[tuple[str, str, str, Any]] = field(default_factory=list)

    def add(self, label: str, family: socket.AddressFamily, kind: socket.SocketKind,
            address: Any) -> None:  # fmt: skip
        listener = socket.socket(family, kind)
        listener.bind(address)
        listener.setblocking(False)
        if kind == socket.SOCK_STREAM:
            listener.listen(8)
            self.tcp.append(listener)
        else:
            self.udp.append(listener)
        if family == socket.AF_UNIX:
            self.targets.append((label, "AF_UNIX", kind.name, address))
        else:
            self.targets.append((label, family.name, kind.name, list(listener.getsockname()[:2])))

    def heard_anything(self) -> bool:
        for listener in self.tcp:
            try:
                listener.accept()[0].close()
                return True
            except BlockingIOError:
                pass
        for listener in self.udp:
            try:
                listener.recvfrom(100)
                return True
            except BlockingIOError:
                pass
        return False

    def close(self) -> None:
        for listener in self.tcp + self.udp:
            listener.close()


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    made = Listeners()
    made.add("tcp to a host listener on 127.0.0.1", socket.AF_INET, socket.SOCK_STREAM,
             ("127.0.0.1", 0))  # fmt: skip
    made.add("udp to a host listener on 127.0.0.1", socket.AF_INET, socket.SOCK_DGRAM,
             ("127.0.0.1", 0))  # fmt: skip
    made.add("abstract unix socket on the host", socket.AF_UNIX, socket.SOCK_STREAM,
             f"\0sde-test-{uuid.uuid4().hex}")  # fmt: skip
    if socket.has_ipv6:
        try:
            made.add("tcp to a host listener on ::1", socket.AF_INET6, socket.SOCK_STREAM,
                     ("::1", 0))  # fmt: skip
            made.add("udp to a host listener on ::1", socket.AF_INET6, socket.SOCK_DGRAM,
                     ("::1", 0))  # fmt: skip
        except OSError:  # no IPv6 loopback on this host
            pass
    yield made
    made.close()


NETWORK = """
import socket
print("interfaces:", sorted(name for _, name in socket.if_nameindex()), flush=True)
def reach(family, kind, address):
    sock = socket.socket(getattr(socket, family), getattr(socket, kind))
    sock.settimeout(2)
    with sock:
        sock.connect(address if family == "AF_UNIX" else tuple(address))
        if kind == "SOCK_DGRAM":
            sock.send(b"ping")
            return sock.recv(100)
        sock.sendall(b"ping")
        return "connected"
for label, family, kind, address in ARGS["targets"]:
    attempt(label, lambda: reach(family, kind, address))
"""
WELL_KNOWN: list[tuple[str, str, str, Any]] = [
    ("tcp to postgresql on 127.0.0.1:5432", "AF_INET", "SOCK_STREAM", ["127.0.0.1", 5432]),
    ("tcp to redis on 127.0.0.1:6379", "AF_INET", "SOCK_STREAM", ["127.0.0.1", 6379]),
    ("tcp to postgresql on localhost by name", "AF_INET", "SOCK_STREAM", ["localhost", 5432]),
    ("tcp to an outside address", "AF_INET", "SOCK_STREAM", ["192.0.2.1", 80]),
    ("udp to a dns server", "AF_INET", "SOCK_DGRAM", ["192.0.2.53", 53]),
    ("udp over ipv6 to ::1", "AF_INET6", "SOCK_DGRAM", ["::1", 5432]),
    ("postgresql's unix socket", "AF_UNIX", "SOCK_STREAM", "/var/run/postgresql/.s.PGSQL.5432"),
]  # fmt: skip


@isolated_only
def test_no_network_connection_can_be_opened_loopback_included(box, listeners):
    targets = listeners.targets + WELL_KNOWN

    ran = box.run(NETWORK, args={"targets": targets})

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    assert "interfaces: ['lo']" in ran.log  # its own loopback only, not the host's
    attempts = ran.attempts()
    assert set(attempts) == {label for label, *_ in targets}, ran.log
    assert_contained(box, ran)
    assert not listeners.heard_anything()


# --- Files it must not read -------------------------------------------------------------
FILES = """
for label, path in ARGS["paths"]:
    attempt(label, lambda: read(path))
for label, folder in ARGS["folders"]:
    attempt(label, lambda: os.listdir(folder))
"""
LISTINGS = """
print("ROOT", json.dumps(sorted(os.listdir("/"))), flush=True)
print("INPUT-PARENT", json.dumps(sorted(os.listdir("/input/.."))), flush=True)
"""


def _host_secrets(box: Box) -> tuple[list[list[str]], list[list[str]]]:
    """The files and folders of this host a script must not reach: the dummy key and
    database files, and this installation's real ones where they exist."""
    databases = {settings.DATABASES["default"]["NAME"],
                 settings.DATABASES["default"].get("TEST", {}).get("NAME")}  # fmt: skip
    paths = [
        ["the key file", str(box.key_file)],
        ["the database file", str(box.database_file)],
        ["another project's extract", str(box.other_extract / "patients.parquet")],
        ["another project's extract beside the input", "/input/../project-2/patients.parquet"],
        ["the installation's secret key", str(Path(settings.SDE_KEY_DIR) / "django-secret-key")],
        ["the settings", str(Path(settings.BASE_DIR) / "sde" / "settings.py")],
        ["/etc/passwd", "/etc/passwd"],
        ["/etc/shadow", "/etc/shadow"],
        *[[f"database {name}", str(name)] for name in databases
          if name and Path(str(name)).is_file()],
    ]  # fmt: skip
    folders = [
        ["the secrets folder", str(box.secrets)],
        ["the key folder", str(settings.SDE_KEY_DIR)],
        ["the var folder", str(settings.VAR_DIR)],
        ["the data root", str(settings.SDE_DATA_ROOT)],
        ["the extracts folder", str(box.other_extract.parent)],
        ["the checkout", str(settings.BASE_DIR / "sde")],
        ["root's home", "/root/.ssh"],
    ]
    return paths, folders


def _readable(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return ""


@isolated_only
def test_no_file_outside_its_folders_exists_for_it(box):
    paths, folders = _host_secrets(box)
    assert Path(paths[4][1]).is_file()  # the real key file is there to be read

    ran = box.run(FILES + LISTINGS, args={"paths": paths, "folders": folders})

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    attempts = ran.attempts()
    assert set(attempts) == {label for label, _ in paths + folders}
    assert set(attempts.values()) == {"BLOCKED FileNotFoundError errno=2"}, ran.log
    root = json.loads(ran.log.split("ROOT ", 1)[1].splitlines()[0])
    assert {"input", "output", "job", "usr", "proc", "tmp"} <= set(root)
    assert not {"var", "home", "srv", "mnt", "run"} & set(root)
    assert "project-2" not in ran.log.split("INPUT-PARENT ", 1)[1]
    real_key = _readable(paths[4][1])
    assert_contained(box, ran, *([real_key] if real_key else []))


@root_only
def test_unisolated_the_process_is_nobody_and_cannot_read_files_only_root_may(box):
    paths, _ = _host_secrets(box)
    closed = [[label, path] for label, path in paths
              if Path(path).is_file() and not Path(path).stat().st_mode & 0o004]  # fmt: skip
    assert {"the key file", "the database file"} <= {label for label, _ in closed}

    ran = box.run(FILES, args={"paths": closed, "folders": [
        ["the secrets folder", str(box.secrets)], ["the key folder", str(settings.SDE_KEY_DIR)]
    ]}, isolate=False)  # fmt: skip

    assert ran.result.isolated is False
    # Unreadable as nobody, or not there at all: a folder closed to others above the
    # sandbox's own folders (here the test's) is covered by an empty one in its view.
    assert set(ran.attempts().values()) <= {
        "BLOCKED PermissionError errno=13",
        "BLOCKED FileNotFoundError errno=2",
    }, ran.log
    assert ran.attempts()["the installation's secret key"] == "BLOCKED PermissionError errno=13"
    assert_contained(box, ran, *filter(None, (_readable(path) for _, path in closed)))


# --- Secrets in the environment ---------------------------------------------------------
ENVIRONMENT = """
print("ENV", json.dumps(dict(os.environ)), flush=True)
print("PROC", read("/proc/self/environ").decode(errors="replace"), flush=True)
"""


@BOTH_MODES
def test_the_environment_is_scrubbed_to_the_allow_list(box, isolate, monkeypatch):
    database_url = f"postgres://sde:{box.secret}@127.0.0.1:5432/sde"
    for name, value in {"DATABASE_URL": database_url, "SDE_SECRET": box.secret,
                        "SDE_SECRET_KEY": box.secret, "CELERY_BROKER_URL": database_url,
                        "DJANGO_SETTINGS_MODULE": "sde.settings",
                        "SDE_KEY_DIR": str(box.secrets)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    ran = box.run(ENVIRONMENT, isolate=isolate, env={"SDE_JOB_NAME": "profile"})

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    seen = json.loads(ran.log.split("ENV ", 1)[1].splitlines()[0])
    expected = {*sandbox.BASE_ENV, "SDE_JOB_NAME"}
    if isolate:
        assert set(seen) - {"PWD"} == expected  # bwrap sets PWD to the folder it starts in
        assert seen["HOME"] == seen["TMPDIR"] == sandbox.SANDBOX_TMP
    else:
        real_paths = {"SDE_SANDBOX_JOB", "SDE_SANDBOX_OUTPUT", "SDE_SANDBOX_INPUT"}
        assert set(seen) == expected | real_paths
    assert seen["SDE_JOB_NAME"] == "profile"
    assert "DATABASE_URL" not in ran.log and "DJANGO_SETTINGS_MODULE" not in ran.log
    assert_contained(box, ran)


# --- The worker's /proc -----------------------------------------------------------------
PROC = """
worker = ARGS["worker"]
for name in ("environ", "cmdline", "status", "root/etc/hostname", "cwd", "fd/0"):
    attempt(f"the worker's {name}", lambda: read(f"/proc/{worker}/{name}"))
attempt("the worker's parent's environ", lambda: read(f"/proc/{ARGS['parent']}/environ"))
pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
print("PIDS", json.dumps(pids), flush=True)
print("INIT-ENVIRON", read("/proc/1/environ").decode(errors="replace"), flush=True)
print("INIT-CMDLINE", read("/proc/1/cmdline").replace(b"\\0", b" ").decode(), flush=True)
"""


@isolated_only
def test_the_workers_proc_is_not_visible_only_its_own_processes_are(box, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgres://sde:{box.secret}@127.0.0.1/sde")

    ran = box.run(PROC, args={"worker": os.getpid(), "parent": os.getppid()})

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    assert set(ran.attempts().values()) == {"BLOCKED FileNotFoundError errno=2"}, ran.log
    pids = json.loads(ran.log.split("PIDS ", 1)[1].splitlines()[0])
    assert os.getpid() not in pids and max(pids) < 10  # a PID namespace of its own
    init_environ = ran.log.split("INIT-ENVIRON ", 1)[1].splitlines()[0]
    assert init_environ.strip("\0").split("\0") == [f"PATH={sandbox.BASE_ENV['PATH']}"]
    host_init = Path("/proc/1/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    assert host_init not in ran.log
    assert_contained(box, ran)


@root_only
def test_unisolated_the_workers_environment_in_proc_is_not_readable(box, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgres://sde:{box.secret}@127.0.0.1/sde")
    code = """
        attempt("the worker's environ", lambda: read(f"/proc/{ARGS['worker']}/environ"))
        attempt("init's environ", lambda: read("/proc/1/environ"))
    """

    ran = box.run(code, args={"worker": os.getpid()}, isolate=False)

    assert set(ran.attempts().values()) == {"BLOCKED PermissionError errno=13"}, ran.log
    assert_contained(box, ran)


# --- Resource limits --------------------------------------------------------------------
@dataclass(frozen=True)
class Bomb:
    code: str
    outcome: str
    limit: str | None = None
    exit_code: int | None = None
    sig: int | None = None
    log: str = ""
    limits: dict[str, Any] = field(default_factory=dict)


FORK_BOMB = """
import time
forked = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forked += 1
except OSError as error:
    print(f"BLOCKED fork after {forked}: {type(error).__name__} errno={error.errno}", flush=True)
"""
MEMORY_BOMB = """
blocks = []
try:
    while True:
        blocks.append(bytearray(32 * 1024 * 1024))
except MemoryError:
    got = len(blocks) * 32
    blocks.clear()
    print(f"BLOCKED memory after {got} MiB: MemoryError", flush=True)
    raise
"""
OUTPUT_FLOOD = """
import time
for n in range(6):
    with open(f"{OUT}/part-{n}.csv", "wb") as part:
        part.write(b"x" * 512 * 1024)
time.sleep(ARGS.get("then_sleep", 0))
"""
BOMBS = {
    "fork-bomb": Bomb(FORK_BOMB, "exited", exit_code=0, log="BlockingIOError errno=11",
                      limits={"processes": 20}),
    "memory-bomb": Bomb(MEMORY_BOMB, "exited", exit_code=1, log="MemoryError",
                        limits={"memory_bytes": 256 * MiB}),
    "infinite-loop": Bomb("while True:\n    pass\n", "limit", "cpu", sig=signal.SIGXCPU,
                          limits={"cpu_seconds": 1}),
    "sleeps-forever": Bomb("import time\ntime.sleep(60)\n", "limit", "wall_clock",
                           sig=signal.SIGKILL, limits={"wall_seconds": 1.0}),
    "one-file-past-the-file-size-limit": Bomb(
        'open(OUT + "/big.csv", "wb").write(b"x" * 3 * 1024 * 1024)\n', "exited", exit_code=1,
        log="OSError: [Errno 27] File too large"),
    "files-past-the-quota-while-running": Bomb(
        OUTPUT_FLOOD.replace('ARGS.get("then_sleep", 0)', "60"), "limit", "output_quota",
        sig=signal.SIGKILL),
    "files-past-the-quota-then-exits": Bomb(OUTPUT_FLOOD, "limit", "output_quota", exit_code=0),
    "log-flood": Bomb(
        'import time\nwhile True:\n    print("x" * 1000, flush=True)\n    time.sleep(0.001)\n',
        "limit", "log_size", sig=signal.SIGKILL, limits={"log_bytes": 64 * 1024}),
}  # fmt: skip


@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS)
@BOTH_MODES
def test_a_resource_bomb_is_stopped_and_reported_and_leaves_no_process(box, bomb, isolate):
    limits = replace(FAST, **bomb.limits)
    started = time.monotonic()

    ran = box.run(bomb.code, isolate=isolate, limits=limits)

    result = ran.result
    assert (result.outcome, result.limit) == (bomb.outcome, bomb.limit), ran.log
    if bomb.sig is not None:
        assert result.signal == bomb.sig
    else:
        assert (result.exit_code, result.signal) == (bomb.exit_code, None), ran.log
    assert bomb.log in ran.log
    assert time.monotonic() - started < 10
    if bomb.limit == "output_quota":
        assert result.output_bytes > limits.output_bytes
    assert result.log_bytes <= limits.file_bytes  # the log is a file of the process too
    assert wait_until_gone(box.token) == []
    assert_contained(box, ran)


def test_the_limits_are_those_that_bombs_hit(box):
    # What the table above relies on: a fork bomb's children are counted, memory is
    # address space, and a file stops at the file-size limit (then the quota counts it).
    ran = box.run(FORK_BOMB, limits=replace(FAST, processes=20), isolate=False)
    forked = int(ran.log.split("after ")[1].split(":")[0])
    assert forked < 20

    ran = box.run(MEMORY_BOMB, limits=replace(FAST, memory_bytes=256 * MiB), isolate=False)
    assert int(ran.log.split("after ")[1].split(" MiB")[0]) < 256

    box.run('open(OUT + "/big.csv", "wb").write(b"x" * 3 * 1024 * 1024)\n', isolate=False)
    assert (box.output / "big.csv").stat().st_size == FAST.file_bytes
    assert wait_until_gone(box.token) == []


DAEMON = """
import time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.0)
        open(OUT + "/late.csv", "w").write("written after the job ended")
        time.sleep(60)
    os._exit(0)
print("started a daemon", flush=True)
"""


@isolated_only
def test_a_daemon_that_leaves_the_session_dies_with_the_sandbox(box):
    ran = box.run(DAEMON)

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    assert wait_until_gone(box.token) == []
    time.sleep(1.5)
    assert not (box.output / "late.csv").exists()


@pytest.mark.xfail(
    strict=True,
    reason="unisolated runs have no PID namespace: a process that leaves the session "
    "(setsid) outlives the job, which is why only built-in analyses on dummy data run "
    "unisolated (tests/unit/sde/analysis/test_jobs.py)",
)
def test_unisolated_a_daemon_that_leaves_the_session_dies_with_the_run(box):
    box.run(DAEMON, isolate=False)

    assert wait_until_gone(box.token, timeout=2.0) == []


# --- Links and writes outside the output folder ------------------------------------------
LINKS = """
for name, target in ARGS["symlinks"].items():
    attempt(f"symlink {name} created", lambda: os.symlink(target, f"{OUT}/{name}"))
    attempt(f"read through symlink {name}", lambda: read(f"{OUT}/{name}"))
attempt("read a file through the root symlink", lambda: read(f"{OUT}/root/etc/shadow"))
for name, source in ARGS["hardlinks"].items():
    attempt(f"hard link {name}", lambda: os.link(source, f"{OUT}/{name}"))
"""


@isolated_only
def test_links_out_of_the_output_folder_lead_nowhere(box):
    symlinks = {"passwd": "/etc/passwd", "key": str(box.key_file), "root": "/",
                "extract": str(box.other_extract / "patients.parquet")}  # fmt: skip
    hardlinks = {"key-hard": str(box.key_file), "script-hard": "/job/script.py",
                 "input-hard": "/input/patients.parquet"}  # fmt: skip

    ran = box.run(LINKS, args={"symlinks": symlinks, "hardlinks": hardlinks})

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    attempts = ran.attempts()
    # Making a link in its own folder is allowed; it leads nowhere inside, and the job
    # service refuses an output folder holding one (tests/unit/sde/analysis/test_jobs.py).
    assert {attempts.pop(f"symlink {name} created") for name in symlinks} == {"ESCAPED None"}
    assert attempts.pop("read through symlink root") == "BLOCKED IsADirectoryError errno=21"
    assert attempts == {
        **{f"read through symlink {name}": "BLOCKED FileNotFoundError errno=2"
           for name in ("passwd", "key", "extract")},
        "read a file through the root symlink": "BLOCKED FileNotFoundError errno=2",
        "hard link key-hard": "BLOCKED FileNotFoundError errno=2",
        "hard link script-hard": "BLOCKED OSError errno=18",  # across mounts
        "hard link input-hard": "BLOCKED OSError errno=18",
    }, ran.log  # fmt: skip
    for name, target in symlinks.items():
        assert os.readlink(box.output / name) == target
    assert ran.result.output_bytes == 0 == sandbox.folder_bytes(box.output)  # links not followed
    assert box.secret not in ran.log and box.secret.encode() not in box.output_contents()


WRITE = """
attempt("write", lambda: open(ARGS["path"], "w").write("written by the sandbox"))
"""
WRITES_OUTSIDE = {
    "the-input": ("/input/new.csv", "EROFS"),
    "the-job-folder": ("/job/new.py", "EROFS"),
    "the-root": ("/{token}", "EROFS"),
    "usr": ("/usr/{token}", "EROFS"),
    "etc": ("/etc/{token}", "EROFS"),
    "dev": ("/dev/{token}", "EROFS"),
    "the-interpreter": (sys.prefix + "/{token}", "EROFS"),
    "the-host-name": ("/proc/sys/kernel/hostname", "EACCES"),
}  # fmt: skip


@isolated_only
@pytest.mark.parametrize(("path", "error"), WRITES_OUTSIDE.values(), ids=WRITES_OUTSIDE)
def test_writing_outside_the_output_folder_is_refused(box, path, error):
    path = path.format(token=box.token)

    ran = box.run(WRITE, args={"path": path})

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    (verdict,) = ran.attempts().values()
    assert verdict.startswith("BLOCKED") and f"errno={getattr(errno, error)}" in verdict
    assert not (box.input / "new.csv").exists() and not (box.job / "new.py").exists()
    if box.token in path:
        assert not Path(path).exists()


@isolated_only
def test_its_tmp_is_private_and_bounded(box):
    code = """
    open(f"/tmp/{sys.argv[1]}", "w").write("private")
    attempt("fill /tmp", lambda: [open(f"/tmp/f{n}", "wb").write(b"x" * (1024 * 1024 - 1))
                                  for n in range(400)])
    attempt("fill /dev/shm", lambda: [open(f"/dev/shm/f{n}", "wb").write(b"x" * (1024 * 1024 - 1))
                                      for n in range(400)])
    """

    ran = box.run(code)

    assert (ran.result.outcome, ran.result.exit_code) == ("exited", 0), ran.log
    assert ran.attempts() == {"fill /tmp": "BLOCKED OSError errno=28",
                              "fill /dev/shm": "BLOCKED OSError errno=28"}, ran.log  # fmt: skip
    assert not Path(tempfile.gettempdir(), box.token).exists()
    assert not Path("/dev", "shm", box.token).exists()


# --- Cancellation ------------------------------------------------------------------------
@BOTH_MODES
def test_a_cancelled_run_is_stopped_and_its_processes_are_gone(box, isolate):
    code = """
    import time
    if os.fork() == 0:
        time.sleep(60)
    time.sleep(60)
    """
    started = time.monotonic()

    ran = box.run(code, isolate=isolate, cancelled=lambda: time.monotonic() - started > 0.5)

    assert (ran.result.outcome, ran.result.limit, ran.result.signal) == (
        "cancelled", None, signal.SIGKILL)  # fmt: skip
    assert ran.result.wall_seconds < 5
    assert wait_until_gone(box.token) == []


# --- Without isolation -------------------------------------------------------------------
@pytest.fixture
def no_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDE_BWRAP", "/nonexistent/bwrap")
    sandbox.isolation_refusal.cache_clear()
    yield
    monkeypatch.undo()
    sandbox.isolation_refusal.cache_clear()


def test_without_bubblewrap_an_isolated_run_is_refused_not_run_unisolated(box, no_bubblewrap):
    refusal = sandbox.isolation_refusal()
    assert refusal == "bubblewrap could not start: FileNotFoundError"

    ran = box.run('open(OUT + "/ran.csv", "w").write("ran")')

    assert (ran.result.outcome, ran.result.detail) == ("error", refusal)
    assert not (box.output / "ran.csv").exists() and not box.log.exists()


def test_without_bubblewrap_an_unisolated_run_still_runs_under_its_limits(box, no_bubblewrap):
    ran = box.run("while True:\n    pass\n", isolate=False, limits=replace(FAST, cpu_seconds=1))

    assert (ran.result.outcome, ran.result.limit, ran.result.isolated) == ("limit", "cpu", False)
