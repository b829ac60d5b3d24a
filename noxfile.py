"""nox sessions for tvbench.

Every session runs in one shared environment (``.nox/tvbench``), created on first use and rebuilt only when
``pyproject.toml`` or ``constraints.txt`` change, so the second command on a fresh clone does not reinstall torch.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
ENV_DIR = ROOT / ".nox" / "tvbench"
STAMP = ENV_DIR / ".tvbench-stamp"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# Each of the two test workers gets one intra-op thread: two workers x two threads only contend on 2 cores.
TEST_ENV = {**OFFLINE, "OMP_NUM_THREADS": "1"}

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"


def _env_python(session: nox.Session) -> str:
    """Create (once) the shared environment with the pinned stack and return its interpreter."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes())
    python = str(ENV_DIR / "bin" / "python")
    if STAMP.exists() and STAMP.read_text() == digest.hexdigest() and Path(python).exists():
        return python
    if not Path(python).exists():
        session.run(sys.executable, "-m", "venv", str(ENV_DIR), external=True)
    session.run(
        python, "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev]",
        "--config-settings", "editable_mode=compat", external=True,
    )
    STAMP.write_text(digest.hexdigest())
    return python


def _tvbench(session: nox.Session, *args: str) -> None:
    """Run the tvbench CLI inside the shared environment, offline."""
    session.run(_env_python(session), "-m", "benchmark", *args, external=True, env=OFFLINE)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (offline, two workers)."""
    workers = os.environ.get("TVBENCH_TEST_WORKERS", "2")
    session.run(
        _env_python(session), "-m", "pytest", "-q", "-n", workers, "--durations=15", *session.posargs,
        external=True, env=TEST_ENV,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff and check the import layering with import-linter."""
    python = _env_python(session)
    session.run(python, "-m", "ruff", "check", ".", external=True)
    session.run(str(Path(python).parent / "lint-imports"), external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and cost benchmarks: evaluator vs argsort, efficiency table of every model."""
    python = _env_python(session)
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run(python, str(script), *session.posargs, external=True, env=OFFLINE)


@nox.session
def reproduce(session: nox.Session) -> None:
    """The whole study on SynthVTT (or a real preset: nox -s reproduce -- --preset msrvtt-vitb32 ...)."""
    _tvbench(session, "reproduce", *(session.posargs or ["--preset", "synthvtt"]))


@nox.session
def parity(session: nox.Session) -> None:
    """tvbench against a method's official code on identical random weights:
    nox -s parity -- [--method glscl|glccl] --official PATH (PATH = a checkout of zchoi/GLSCL or JingXiaolun/GLCCL;
    add --write-fixture tests/fixtures/parity_METHOD.json to refresh CI's copy)."""
    session.run(_env_python(session), "-m", "benchmark.study.parity_cli", *session.posargs, external=True,
                env=OFFLINE)


@nox.session
def submit(session: nox.Session) -> None:
    """Submit a run or score matrix to the leaderboard: nox -s submit -- PATH --benchmark B --name N."""
    _tvbench(session, "leaderboard", "submit", *session.posargs)


@nox.session
def cite(session: nox.Session) -> None:
    """Print result tables with citation keys: nox -s cite -- --benchmark msrvtt --format latex."""
    _tvbench(session, "cite", *session.posargs)
