"""ACRO 1.0.2 in its own throwaway virtual environment, driven as a subprocess.

Our disclosure checker must be at least as strict as ACRO (PyPI ``acro==1.0.2``), so the
parity harness runs the real ACRO on the same microdata. ACRO pins older libraries
(``pandas<=2.3.3``), so it is never imported into the project's environment: it lives in
a virtual environment of its own, built once and cached, and ``acro_runner.py`` runs in
it. If the package registry cannot be reached we raise ``AcroUnavailable`` so tests skip
with a clear reason; there is no fallback, since a fake ACRO would prove nothing.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ACRO_VERSION = "1.0.2"
ACRO_REQUIREMENT = f"acro=={ACRO_VERSION}"
# pyarrow is not an ACRO dependency; the runner needs it to read the parquet microdata.
REQUIREMENTS = (ACRO_REQUIREMENT, "pyarrow")
RUNNER = Path(__file__).with_name("acro_runner.py")
PIP_TIMEOUT_SECONDS = 900
VALIDATE = (
    "import importlib.metadata, json, acro.version, pyarrow; "
    "print(json.dumps([acro.version.__version__, importlib.metadata.version('acro')]))"
)


class AcroUnavailable(Exception):
    """ACRO could not be installed from the package registry (offline, registry down).

    Tests turn this into a skip; it is never a reason to compare against anything else.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"could not install {ACRO_REQUIREMENT} from the package registry: {reason}"
        )


class AcroEnvironmentError(RuntimeError):
    """The ACRO environment is broken or is not ACRO 1.0.2: a failure, not a skip."""


class AcroRunnerError(RuntimeError):
    """``acro_runner.py`` rejected the request or crashed outside any one output."""


def acro_venv_dir() -> Path:
    """``$SDE_ACRO_VENV``, else ``~/.cache/sde/acro-1.0.2``."""
    configured = os.environ.get("SDE_ACRO_VENV")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "sde" / f"acro-{ACRO_VERSION}"


def acro_python() -> Path:
    """The Python of a validated ACRO 1.0.2 environment, building it on first use.

    Safe to call from several pytest-xdist workers at once: one builds (about a minute)
    while the others wait on a file lock, then all validate the same environment. The
    outcome, success or ``AcroUnavailable``, is remembered for the rest of the process so
    an offline run does not retry pip for every test.

    Raises ``AcroUnavailable`` when pip cannot install ACRO, ``AcroEnvironmentError``
    when the environment cannot be created or holds something other than ACRO 1.0.2.
    """
    outcome = _prepare(acro_venv_dir())
    if isinstance(outcome, AcroUnavailable):
        raise AcroUnavailable(outcome.reason)
    return outcome


@functools.cache
def _prepare(venv: Path) -> Path | AcroUnavailable:
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            python = venv / "bin" / "python"
            if python.exists() and _installed_version(python) == ACRO_VERSION:
                return python
            try:
                _build(venv)
            except AcroUnavailable as exc:
                return exc
            _check_version(python)
            return python
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(venv: Path) -> None:
    if venv.exists():
        # A half-built environment from an interrupted run. Only ever delete something
        # that is recognisably a virtual environment: $SDE_ACRO_VENV could be mistyped.
        if not (venv / "pyvenv.cfg").exists() and any(venv.iterdir()):
            raise AcroEnvironmentError(
                f"{venv} exists and is not a virtual environment; refusing to replace it"
            )
        shutil.rmtree(venv)
    # The project's own interpreter (Python >= 3.11, which ACRO supports) rather than
    # whatever "python3" is first on PATH.
    created = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
    )
    if created.returncode != 0:
        raise AcroEnvironmentError(f"python -m venv {venv} failed: {_tail(created.stderr)}")
    try:
        installed = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", *REQUIREMENTS],
            capture_output=True,
            text=True,
            check=False,
            timeout=PIP_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise AcroUnavailable(f"pip install timed out after {PIP_TIMEOUT_SECONDS} s") from exc
    if installed.returncode != 0:
        raise AcroUnavailable(_tail(installed.stderr or installed.stdout))


def _installed_version(python: Path) -> str | None:
    """ACRO's version if ``import acro`` works and the module and metadata agree."""
    probe = subprocess.run(
        [str(python), "-I", "-c", VALIDATE], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return None
    module_version, metadata_version = json.loads(probe.stdout)
    return module_version if module_version == metadata_version else None


def _check_version(python: Path) -> None:
    found = _installed_version(python)
    if found != ACRO_VERSION:
        raise AcroEnvironmentError(
            f"{python} should import acro {ACRO_VERSION} after installing it, found {found}"
        )


def run_acro(request: dict[str, Any], *, workdir: Path, timeout: float = 600) -> dict[str, Any]:
    """Run ``acro_runner.py`` on ``request`` in the ACRO environment; return its response.

    ``request`` is the runner's input (see its docstring); it is written to
    ``workdir/acro-request.json``. Raises ``AcroUnavailable`` as ``acro_python`` does,
    and ``AcroRunnerError`` if the runner exits non-zero.
    """
    python = acro_python()
    workdir.mkdir(parents=True, exist_ok=True)
    request_path = workdir / "acro-request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        # One font cache per ACRO environment instead of one per user or per run.
        "MPLCONFIGDIR": str(python.parent.parent / "mplconfig"),
    }
    # -I: ignore PYTHONPATH and the user site, and do not put tests/parity on sys.path,
    # so nothing from the project can leak into ACRO's interpreter.
    completed = subprocess.run(
        [str(python), "-I", str(RUNNER), str(request_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
        env=env,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AcroRunnerError(
            f"acro_runner.py exited {completed.returncode}: {_tail(completed.stderr)}"
        )
    return json.loads(completed.stdout)


def _tail(text: str, lines: int = 8) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "(no output)"
