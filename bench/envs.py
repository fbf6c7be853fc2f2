"""Virtual environments for the peers we benchmark against, kept apart from the project's own.

`ensure_env("langchain")` returns the python of `bench/.venvs/langchain/`, built once from the
pinned `bench/requirements-langchain.txt` and rebuilt only when that file changes (its SHA-256 is
stored in the venv). A file lock makes concurrent callers wait for one build instead of racing.

    python bench/envs.py langchain litellm     # build (or check) these environments
    python bench/envs.py --all
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
VENVS_DIR = BENCH_DIR / ".venvs"
DATA_DIR = BENCH_DIR / ".data"
STAMP_NAME = ".requirements-sha256"


def requirements_file(name: str) -> Path:
    """The pinned requirements of one environment; `project` is the project's production set."""
    if name == "project":
        return PROJECT_ROOT / "requirements.txt"
    return BENCH_DIR / f"requirements-{name}.txt"


def available_envs() -> list[str]:
    """Every environment that has a requirements file under bench/."""
    names = [p.name[len("requirements-"):-len(".txt")] for p in BENCH_DIR.glob("requirements-*.txt")]
    return sorted(names)


def env_dir(name: str) -> Path:
    return VENVS_DIR / name


def env_python(name: str) -> Path:
    return env_dir(name) / "bin" / "python"


def requirements_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_env(name: str, *, quiet: bool = True) -> Path:
    """The python executable of `bench/.venvs/<name>/`, creating or refreshing the venv if needed."""
    requirements = requirements_file(name)
    if not requirements.is_file():
        raise FileNotFoundError(f"no requirements file for environment {name!r}: {requirements}")
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(VENVS_DIR / f"{name}.lock"):
        digest = requirements_digest(requirements)
        stamp = env_dir(name) / STAMP_NAME
        if env_python(name).exists() and stamp.exists() and stamp.read_text().strip() == digest:
            return env_python(name)
        _build(name, requirements, quiet=quiet)
        stamp.write_text(digest + "\n")
        return env_python(name)


def ensure_bench_requirements(*, quiet: bool = True) -> None:
    """Install `bench/requirements.txt` (what the slow benchmarks import, such as numpy) into the
    environment running this script, the project's `.venv`, once per version of that file."""
    requirements = BENCH_DIR / "requirements.txt"
    stamp = Path(sys.prefix) / ".bench-requirements-sha256"
    digest = requirements_digest(requirements)
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    print(f"bench: installing {requirements.relative_to(PROJECT_ROOT)} into {sys.prefix}", file=sys.stderr)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", *(["--quiet"] if quiet else [])]
    subprocess.run([*pip, "install", "-r", str(requirements)], check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    stamp.write_text(digest + "\n")


def _build(name: str, requirements: Path, *, quiet: bool) -> None:
    """A fresh venv with exactly the pinned set: leftovers of an older pin set would skew sizes."""
    target = env_dir(name)
    if target.exists():
        shutil.rmtree(target)
    print(f"bench: building environment {name} from {requirements.name} (once)", file=sys.stderr)
    subprocess.run([_base_python(), "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    if quiet:
        pip.append("--quiet")
    subprocess.run([*pip, "install", "-r", str(requirements)], check=True,
                   env={**os.environ, "PIP_NO_INPUT": "1"})


def _base_python() -> str:
    """The interpreter behind the current venv, so peer venvs use the same Python as the project."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base) if base.exists() else sys.executable


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="environments to build: " + ", ".join(available_envs()))
    parser.add_argument("--all", action="store_true", help="build every environment")
    parser.add_argument("--verbose", action="store_true", help="show pip's output")
    args = parser.parse_args()
    names = available_envs() if args.all else args.names
    if not names:
        parser.error("name at least one environment, or --all")
    for name in names:
        print(f"{name}: {ensure_env(name, quiet=not args.verbose)}")


if __name__ == "__main__":
    main()
