"""Running analysis code in a sandbox: a separate process with no network, bounded CPU,
memory, processes, file sizes, output and time, that sees only its own inputs.

With isolation (bubblewrap, ``bwrap``, using unprivileged user namespaces) the process
gets new user, PID, network, IPC, UTS and cgroup namespaces and a root filesystem built
from an allow-list: the interpreter and its libraries read-only, ``/input`` (the
project's extract, read-only), ``/output`` (writable), ``/job`` (the code and its
parameters, read-only), a private ``/tmp``, its own ``/proc`` (which shows only its own
processes) and a minimal ``/dev``. Nothing else of the host exists inside: not the data
root, the key files, the database file or socket, the settings, the worker's ``/proc``.
The network namespace is the sandbox's own: its only interface is its own loopback,
so nothing outside it (the host's database, broker or anything on the network) can be
reached, the host's loopback included. The environment is scrubbed to a fixed allow-list.

Without isolation (no bwrap, or user namespaces refused), ``run`` still applies the
resource limits and the scrubbed environment but cannot hide the filesystem or the
network, nor stop a process that leaves its session; the job service then runs only
built-in analyses (our own code) on dummy data, and refuses scripts and real data
(``isolation_refusal``).

Limits are kernel resource limits set in the child before it starts (CPU seconds,
address space, processes, file size, open files, no core dumps), plus what the parent
watches: wall-clock time, the total size of the output folder and of the log, and
cancellation. When run as root the child first becomes ``nobody``, because the kernel
does not apply the process limit to root and because root could read files the
sandbox must not.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

NOBODY: Final = 65534
CLONE_NEWNS: Final = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)
TMP_BYTES: Final = 256 * 1024**2  # the sandbox's private /tmp
SHM_BYTES: Final = 64 * 1024**2  # and its /dev/shm
POLL_SECONDS: Final = 0.2
# Environment variables the sandboxed process gets; nothing else of the worker's. Its /tmp
# is a private tmpfs inside the sandbox, not the host's.
SANDBOX_TMP: Final = "/tmp"  # noqa: S108
SANDBOX_SHM: Final = "/dev/shm"  # noqa: S108
BASE_ENV: Final[Mapping[str, str]] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": SANDBOX_TMP,
    "TMPDIR": SANDBOX_TMP,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",  # the log keeps prints and tracebacks in the order they happened
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": SANDBOX_TMP + "/matplotlib",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# System folders bound read-only when they exist (libraries the interpreter links against).
SYSTEM_PATHS: Final = ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives", "/etc/ld.so.cache",
                       "/etc/localtime", "/etc/fonts", "/usr/share/fonts")  # fmt: skip


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 900
    memory_bytes: int = 4 * 1024**3
    processes: int = 64
    file_bytes: int = 256 * 1024**2
    output_bytes: int = 512 * 1024**2
    log_bytes: int = 8 * 1024**2
    wall_seconds: float = 1800.0
    open_files: int = 256


@dataclass(frozen=True)
class SandboxSpec:
    """What to run and what it may see. ``argv`` runs inside the sandbox (paths as seen
    there: /job, /input, /output, /opt/sde); ``library`` is bound read-only at
    /opt/sde and put on PYTHONPATH."""

    argv: Sequence[str]
    job_dir: Path
    output_dir: Path
    log_path: Path
    input_dir: Path | None = None
    library: Path | None = None
    limits: Limits = field(default_factory=Limits)
    isolate: bool = True
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SandboxResult:
    """How the run ended. ``outcome``: "exited" (see exit_code), "limit" (``limit`` names
    which), "cancelled" or "error" (the sandbox itself could not start)."""

    outcome: str
    exit_code: int | None = None
    signal: int | None = None
    limit: str | None = None
    isolated: bool = False
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    max_rss_kb: int = 0
    output_bytes: int = 0
    log_bytes: int = 0
    detail: str = ""


# --- Isolation --------------------------------------------------------------------------
def bwrap_path() -> str | None:
    return os.environ.get("SDE_BWRAP") or shutil.which("bwrap")


@functools.cache
def isolation_refusal() -> str | None:
    """Why isolated runs are impossible on this host (None: they are possible), found by
    starting a trivial isolated process once per worker process."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed, so scripts cannot be isolated"
    probe = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
             *_symlinks(), "--", "/bin/true"]  # fmt: skip
    try:
        completed = subprocess.run(
            probe, capture_output=True, timeout=20, preexec_fn=_drop_privileges, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start: {type(error).__name__}"
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()
        return "this host refuses unprivileged namespaces: " + (message[-1] if message else "")
    return None


def _symlinks() -> list[str]:
    """Merged-/usr systems link /bin, /lib, /lib64 into /usr."""
    args = []
    for name in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
    return args


def _drop_privileges(paths: Sequence[str | Path] = ()) -> None:
    """In the child, before exec: root becomes nobody, so the process limit applies (the
    kernel exempts root) and files only root may read stay unreadable. The folders the
    sandbox needs (the interpreter's, and ``paths``) must stay reachable, so any of them
    under a folder others may not enter (e.g. /root/.pyenv under /root) is re-exposed
    first in a private mount namespace: the closed folder is covered by an empty one, and
    only the needed folders are bound back into it."""
    if os.geteuid() != 0:
        return
    closed: dict[str, list[str]] = {}
    for path in [*_interpreter_prefixes(), *map(str, paths)]:
        if (ancestor := _closed_ancestor(path)) is not None:
            closed.setdefault(ancestor, []).append(path)
    if closed:
        _check(_libc.unshare(CLONE_NEWNS), "unshare")
        _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount private")
    for ancestor, inside in closed.items():
        fds = {path: os.open(path, os.O_PATH) for path in inside}
        _check(_libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", 0, b"mode=0755"), "tmpfs")
        for path, fd in fds.items():
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                Path(path).touch()  # a mount point for the file
            source = f"/proc/self/fd/{fd}".encode()
            _check(_libc.mount(source, path.encode(), None, MS_BIND | MS_REC, None), "bind")
            os.close(fd)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"sandbox set-up failed: {what}")


def _interpreter_prefixes() -> list[str]:
    return sorted({sys.base_prefix, sys.prefix})


def _closed_ancestor(path: str) -> str | None:
    """The highest folder above ``path`` that others may not enter (None: all may). Not
    ``path`` itself: covering it would hide it, and binding it back keeps its own mode."""
    parts = Path(path).parts
    for end in range(2, len(parts)):
        folder = os.path.join(*parts[:end])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _bwrap_argv(spec: SandboxSpec, bwrap: str) -> list[str]:
    def bind(source: Path, target: str, *, writable: bool = False) -> list[str]:
        return ["--bind" if writable else "--ro-bind", str(source), target]

    args = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--hostname", "sandbox"]  # fmt: skip
    args += _symlinks()
    for path in SYSTEM_PATHS:
        if os.path.exists(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    # The private /tmp first: an interpreter installed under /tmp is bound on top of it.
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", SANDBOX_TMP]
    for prefix in _interpreter_prefixes():
        if not prefix.startswith("/usr"):
            args += ["--ro-bind", prefix, prefix]
    args += bind(spec.job_dir, "/job") + bind(spec.output_dir, "/output", writable=True)
    if spec.input_dir is not None:
        args += bind(spec.input_dir, "/input")
    if spec.library is not None:
        args += bind(spec.library, "/opt/sde")
    # The root and /dev are unbounded tmpfs: read-only, so that files written there cannot
    # hold memory past the limits (shared memory gets a bounded tmpfs of its own).
    args += ["--size", str(SHM_BYTES), "--tmpfs", SANDBOX_SHM, "--remount-ro", "/dev"]
    args += ["--remount-ro", "/", "--clearenv"]
    for name, value in _environment(spec).items():
        args += ["--setenv", name, value]
    args += ["--chdir", "/output", "--"]
    return args + list(spec.argv)


def _environment(spec: SandboxSpec) -> dict[str, str]:
    env = dict(BASE_ENV)
    if spec.library is not None:
        env["PYTHONPATH"] = "/opt/sde"
    env.update(spec.env)
    return env


def _limit(spec: Limits, paths: Sequence[Path]) -> Callable[[], None]:
    """In the child, before exec: a new session, the resource limits, and (for root)
    becoming nobody, with ``paths`` reachable, before the process limit is set."""

    def apply() -> None:
        os.setsid()
        quota = min(spec.file_bytes, spec.output_bytes)
        for kind, value in (
            (resource.RLIMIT_AS, spec.memory_bytes),
            (resource.RLIMIT_FSIZE, quota),
            (resource.RLIMIT_NOFILE, spec.open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(kind, (value, value))
        # SIGXCPU at the limit (reported as the CPU limit), SIGKILL a little later.
        resource.setrlimit(resource.RLIMIT_CPU, (spec.cpu_seconds, spec.cpu_seconds + 5))
        _drop_privileges(paths)
        resource.setrlimit(resource.RLIMIT_NPROC, (spec.processes, spec.processes))

    return apply


# --- Running ----------------------------------------------------------------------------
def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path``, never following links."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def prepare_output(path: Path) -> None:
    """An empty output folder the sandboxed process (nobody, when the worker is root) can
    write."""
    path.mkdir(parents=True, exist_ok=False)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    path.chmod(0o700)


def run(
    spec: SandboxSpec,
    *,
    cancelled: Callable[[], bool] | None = None,
    tick: Callable[[SandboxResult], None] | None = None,
    tick_seconds: float = 2.0,
) -> SandboxResult:
    """Run ``spec`` to the end, a limit or cancellation. ``cancelled`` and ``tick`` (with
    the usage so far) are called every ``tick_seconds`` from this process."""
    isolated = spec.isolate
    if isolated:
        bwrap = bwrap_path()
        refusal = isolation_refusal()
        if refusal is not None or bwrap is None:
            return SandboxResult(outcome="error", detail=refusal or "no bwrap")
        argv = _bwrap_argv(spec, bwrap)
        env = {"PATH": BASE_ENV["PATH"]}
    else:
        argv = [_outside(a, spec) for a in spec.argv]
        env = {**_environment(spec), **_outside_env(spec)}
    reachable = [*_mounts(spec).values(), spec.job_dir.parent / "tmp"]
    started = time.monotonic()
    with open(spec.log_path, "wb") as log:
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=str(spec.output_dir), preexec_fn=_limit(spec.limits, reachable),
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as error:
            return SandboxResult(outcome="error", detail=f"could not start: {error}")
        result = _watch(process, spec, started, cancelled, tick, tick_seconds)
    result.isolated = isolated
    result.output_bytes = folder_bytes(spec.output_dir)
    result.log_bytes = spec.log_path.stat().st_size
    if result.outcome == "exited" and result.output_bytes > spec.limits.output_bytes:
        result.outcome, result.limit = "limit", "output_quota"
    return result


def _watch(
    process: subprocess.Popen[bytes],
    spec: SandboxSpec,
    started: float,
    cancelled: Callable[[], bool] | None,
    tick: Callable[[SandboxResult], None] | None,
    tick_seconds: float,
) -> SandboxResult:
    limits = spec.limits
    stop: tuple[str, str | None] | None = None
    next_tick = started + tick_seconds
    cpu, rss = 0.0, 0
    while True:
        exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        now = time.monotonic()
        if exited is not None:
            # What it left running in its session goes too (unisolated runs have no PID
            # namespace to end them); killed before the reap, while the group's id is
            # still its own.
            _kill(process.pid)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        tree_cpu, tree_rss = _tree_usage(process.pid)
        cpu, rss = max(cpu, tree_cpu), max(rss, tree_rss)
        if stop is None:
            if now - started > limits.wall_seconds:
                stop = ("limit", "wall_clock")
            elif folder_bytes(spec.output_dir) > limits.output_bytes:
                stop = ("limit", "output_quota")
            elif _size(spec.log_path) > limits.log_bytes:
                stop = ("limit", "log_size")
            elif now >= next_tick:
                next_tick = now + tick_seconds
                if cancelled is not None and cancelled():
                    stop = ("cancelled", None)
                elif tick is not None:
                    tick(SandboxResult(outcome="running", wall_seconds=now - started,
                                       cpu_seconds=cpu, max_rss_kb=rss))  # fmt: skip
            if stop is not None:
                _kill(process.pid)
        time.sleep(POLL_SECONDS)
    result = SandboxResult(
        outcome="exited",
        wall_seconds=round(now - started, 3),
        cpu_seconds=round(max(cpu, usage.ru_utime + usage.ru_stime), 3),
        max_rss_kb=max(rss, int(usage.ru_maxrss)),
    )
    code = process.returncode
    if code < 0:
        result.signal = -code
    else:
        result.exit_code = code
        if code > 128:  # bwrap reports a child killed by a signal as 128 + the signal
            result.signal = code - 128
    if stop is not None:
        result.outcome, result.limit = stop
    elif result.signal == signal.SIGXCPU:
        result.outcome, result.limit = "limit", "cpu"
    elif result.signal == signal.SIGXFSZ:
        result.outcome, result.limit = "limit", "file_size"
    return result


_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE_KB: Final = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree_usage(root: int) -> tuple[float, int]:
    """CPU seconds and resident kB of ``root`` and its descendants now. Each live
    process counts its own time and that of the children it reaped, so every second is
    counted once."""
    cpu_ticks, rss_pages = 0, 0
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            children = []
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", "rb") as listed:
                    children += [int(child) for child in listed.read().split()]
        except (OSError, ValueError, IndexError):
            continue
        # fields[0] is field 3 (state): utime..cstime are fields 14-17, rss is field 24.
        cpu_ticks += sum(int(v) for v in fields[11:15])
        rss_pages += int(fields[21])
        pending += children
    return cpu_ticks / _TICKS, rss_pages * _PAGE_KB


def _kill(pid: int) -> None:
    """The whole session (the sandbox's PID namespace dies with its first process)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _outside(arg: str, spec: SandboxSpec) -> str:
    """An in-sandbox path as the unisolated process sees it."""
    for inside, outside in _mounts(spec).items():
        if arg == inside or arg.startswith(inside + "/"):
            return str(outside) + arg[len(inside) :]
    return arg


def _mounts(spec: SandboxSpec) -> dict[str, Path]:
    mounts = {"/job": spec.job_dir, "/output": spec.output_dir}
    if spec.input_dir is not None:
        mounts["/input"] = spec.input_dir
    if spec.library is not None:
        mounts["/opt/sde"] = spec.library
    return mounts


def _outside_env(spec: SandboxSpec) -> dict[str, str]:
    """Unisolated runs see real paths: tell the helper library where its folders are."""
    env = {"SDE_SANDBOX_" + name.strip("/").replace("/", "_").upper(): str(path)
           for name, path in _mounts(spec).items()}  # fmt: skip
    if spec.library is not None:
        env["PYTHONPATH"] = str(spec.library)
    env["TMPDIR"] = env["HOME"] = str(spec.job_dir.parent / "tmp")
    env["MPLCONFIGDIR"] = env["TMPDIR"] + "/matplotlib"
    return env
