"""Check that paperzoo installs and its core tests pass with a given torch, in a venv of its own, and record it.

    python scripts/check_torch_version.py --torch 2.14.1              a new venv: torch==2.14.1, then pip install -e .
    python scripts/check_torch_version.py --venv .venv --no-install   the venv as it is (the Makefile's torch 2.13.0)

It creates the venv (`--venv`, default /tmp/paperzoo-torch-<version>), installs `torch==<version>` first (pip finds
the wheels its configuration points at; on the project's machines torch 2.13.0 CPU and 2.14.1 lie on disk), then
`pip install -e '.[dev]'` (the ranges of pyproject.toml resolve against that torch), runs the core tests (`TESTS`:
the engine's loop, checkpoints, hooks and writers, the configs, the batch-norm modules against torch's) against this
checkout's sources, and writes the outcome into docs/results/dependencies.json: one entry
per torch version, replacing an older entry of the same version, with the versions of every installed distribution
paperzoo depends on. docs/getting-started.md renders that file (scripts/readme_claims.py); the lower bound of
`torch` in pyproject.toml is the oldest version recorded there with no failed test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "dependencies.json"
# the engine's loop, checkpoints, hooks and writers, the configs, and the batch-norm modules side by side with torch's
# (the code closest to torch's own behaviour): about 60 tests, minutes on a busy 2-core machine
TESTS = ["tests/engine/test_engine_trainer.py", "tests/engine/test_engine_checkpoint.py",
         "tests/engine/test_engine_hooks.py", "tests/engine/test_engine_writers.py", "tests/test_config.py",
         "tests/batchnorm/test_batchnorm_modules.py"]

# the installed versions of paperzoo's own requirements, read inside the venv
VERSIONS = """
import importlib.metadata as m, json, re, sys
names = [re.split(r"[ ;<>=!~\\[]", r)[0] for r in m.requires("paperzoo") or [] if "extra ==" not in r]
print(json.dumps({"python": sys.version.split()[0],
                  "packages": {n: m.version(n) for n in sorted(["torch", *names], key=str.lower)}}))
"""


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd if "-c" not in cmd else cmd[:cmd.index("-c") + 1]), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", help="the torch version to install (required unless --no-install)")
    parser.add_argument("--venv", help="the venv to create or use (default /tmp/paperzoo-torch-<version>)")
    parser.add_argument("--no-install", action="store_true", help="use --venv as it is")
    parser.add_argument("--out", default=str(RESULTS), help="the results file (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.no_install and not args.torch:
        parser.error("--torch VERSION is required unless --no-install")
    venv = Path(args.venv or f"/tmp/paperzoo-torch-{args.torch}")
    python = venv / "bin" / "python"
    started = time.time()
    if not args.no_install:
        if not python.exists():  # an earlier check's venv is reused: pip then installs only what differs
            run(sys.executable, "-m", "venv", str(venv))
        run(str(python), "-m", "pip", "install", "--quiet", f"torch=={args.torch}")
        run(str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]")
    installed = json.loads(run(str(python), "-c", VERSIONS, capture_output=True, text=True).stdout)
    if args.torch and installed["packages"]["torch"].split("+")[0] != args.torch:
        raise SystemExit(f"{venv} holds torch {installed['packages']['torch']}, not {args.torch}")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # this checkout, whatever the venv's install points at
        tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                                *TESTS], cwd=ROOT, env=env)
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    entry = {"torch": installed["packages"]["torch"], "python": installed["python"],
             "installed_with": "its own venv: torch, then pip install -e .[dev]" if not args.no_install
             else "an existing venv (the Makefile's)",
             "tests": TESTS, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
             "failed": counts["failures"] + counts["errors"], "skipped": counts["skipped"],
             "pytest_exit": tests.returncode, "packages": installed["packages"],
             "date": time.strftime("%Y-%m-%d", time.gmtime()), "minutes": round((time.time() - started) / 60, 1)}
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"entries": []}
    version = lambda e: [int(p) for p in re.findall(r"\d+", e["torch"].split("+")[0])]  # noqa: E731
    data["entries"] = sorted([e for e in data["entries"] if e["torch"] != entry["torch"]] + [entry], key=version)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"torch {entry['torch']}: {entry['passed']} passed, {entry['failed']} failed, {entry['skipped']} skipped "
          f"-> {out}")
    return 0 if entry["failed"] == 0 and tests.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
