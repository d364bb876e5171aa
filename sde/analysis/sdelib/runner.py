"""The first code to run inside the sandbox: reads /job/job.json and runs the built-in
analysis or the researcher's script. On an exception it records only the error's class
(shown to the researcher for real runs) and prints the traceback to the log (kept for
output checkers). Exit status: 0 succeeded, 1 the analysis failed, 2 bad job file."""

from __future__ import annotations

import importlib
import json
import runpy
import sys
import traceback
from datetime import date

import pandas as pd
import sdelib

BUILTIN_PREFIX = "sde.phm."


def _record_error(error: BaseException) -> None:
    sdelib.CONTROL.mkdir(exist_ok=True)
    (sdelib.CONTROL / "error.json").write_text(json.dumps({"error_class": type(error).__name__}))


def main() -> int:
    try:
        job = json.loads((sdelib.JOB / "job.json").read_text())
    except (OSError, ValueError) as error:
        print(f"sandbox: cannot read the job: {error}", file=sys.stderr)
        return 2
    try:
        if job["kind"] == "builtin":
            module_name, function_name = job["entry"].split(":")
            if not module_name.startswith(BUILTIN_PREFIX):
                raise ValueError(f"not a built-in analysis: {job['entry']}")
            function = getattr(importlib.import_module(module_name), function_name)
            sdelib.progress(5, "reading the extract")
            frames = sdelib.frames()
            sdelib.progress(20, "analysing")
            parameters = dict(job.get("parameters", {}))
            for name in job.get("dates", []):
                if name in parameters:
                    parameters[name] = date.fromisoformat(parameters[name])
            if cohort := job.get("cohort_parameter"):
                parameters[cohort] = pd.read_parquet(sdelib.JOB / "cohort.parquet")["person_id"]
            result = function(frames, **parameters)
            sdelib.progress(90, "writing the outputs")
            sdelib.write_result(result)
        else:
            sys.argv = ["script.py"]
            runpy.run_path(str(sdelib.JOB / "script.py"), run_name="__main__")
    except BaseException as error:  # noqa: BLE001 - the class is recorded, the trace logged
        if isinstance(error, SystemExit) and error.code in (0, None):
            return 0
        traceback.print_exc()
        _record_error(error)
        return 1
    sdelib.progress(100, "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
