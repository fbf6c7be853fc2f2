"""Deploy check: install the bundle the way Vercel's Python builder does, then import every function.

Vercel's builder walks up from `api/` to the project root and installs the first manifest it
finds, in this order in each folder: `pyproject.toml` (with its `uv.lock`), `Pipfile.lock`,
`Pipfile`, then `requirements.frozen.txt`, `requirements-frozen.txt`, `requirements.txt`. A
requirements file is turned into a project for the Python version it selected (from
`.python-version`), locked with `uv lock` and installed with `uv sync --no-dev --locked`. So a
`pyproject.toml` at the root replaces `requirements.txt` entirely: one holding only tool settings
once made every deploy install nothing, and every function but health failed to import.

These tests replay that on a copy of what the builder sees (`api/`, `lib/`, `requirements.txt`,
`vercel.json`, `.python-version`, `openapi.json`) in an empty folder: `requirements.txt` is installed there with uv
for the interpreter running the tests (binary wheels such as pydantic-core and psycopg-binary are
version-specific), then each `api/*.py` is imported by a fresh interpreter that sees only that
folder and the standard library, never this checkout or its `.venv`. Heavy dependencies are
imported lazily, per request, so importing a function does not prove they are installed: every
third-party module that `api/` and `lib/` import must also be found in the install and be listed
in `requirements.txt` itself, not merely arrive with another package. Finally `requirements.txt`
must resolve for the pinned Python on Vercel's platform.

They need PyPI (uv's own cache makes repeated runs fast); `-m "not install"` leaves them out.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parent.parent
# What the builder reads to choose Python and install dependencies, and the code it ships.
SHIPPED = ["api", "lib", "requirements.txt", "vercel.json", ".python-version", "openapi.json"]
# Manifests the builder takes instead of requirements.txt when found in api/ or at the root.
SHADOWING = ["pyproject.toml", "uv.lock", "pylock.toml", "Pipfile", "Pipfile.lock",
             "requirements.frozen.txt", "requirements-frozen.txt"]
DEPS = "_deps"
# Vercel builds and runs functions on x86_64 Amazon Linux 2023 (glibc 2.34).
VERCEL_PLATFORM = "x86_64-manylinux_2_34"
FUNCTIONS = sorted(f"api.{path.stem}" for path in (ROOT / "api").glob("*.py") if path.stem != "__init__")

# Imported by lib/ but deliberately not installed on Vercel.
LOCAL_ONLY = {
    "pgserver": "the embedded Postgres of local development (requirements-dev.txt)",
    "uvicorn": "the local server (requirements-dev.txt)",
    "sentence_transformers": "the optional offline embedder (requirements-local-model.txt)",
    "yaml": "YAML prompt files for `python -m lib.cli prompts push` (requirements-dev.txt; JSON needs nothing)",
}
# Imported directly, installed by the listed package that pins it.
INSTALLED_WITH = {"botocore": "boto3", "httpx": "groq", "httpx2": "anthropic"}

# Run as `python -I -S -c CHILD`: no site-packages (so not the .venv and its path file pointing
# at this checkout), no PYTHON* variables, no current folder. Then the bundle goes first on the
# path and its dependencies are added as a site folder, as Vercel's entry point does.
CHILD = r"""
import importlib, importlib.metadata, importlib.util, json, site, sys
bundle, deps, action, *names = sys.argv[1:]
sys.path.insert(0, bundle)
site.addsitedir(deps)
report = {"sys_path": sys.path, "modules": {}}
for name in names:
    entry = report["modules"][name] = {}
    try:
        if action == "import":
            module = importlib.import_module(name)
            app = getattr(module, "app", None)
            entry.update(file=module.__file__, app=app is not None, callable=callable(app))
        else:
            spec = importlib.util.find_spec(name)
            entry["file"] = spec and (spec.origin or list(spec.submodule_search_locations or [None])[0])
            entry["distributions"] = importlib.metadata.packages_distributions().get(name, [])
    except Exception as error:
        entry["error"] = f"{type(error).__name__}: {error}"
print(json.dumps(report))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> set[str]:
    """The distribution names listed in requirements.txt, canonicalised."""
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
            assert match, f"requirements.txt: not a plain requirement: {line!r}"
            names.add(_canonical(match.group(0)))
    return names


def third_party_imports(folders: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in these folders, at module level or inside functions."""
    found = set()
    for path in (p for folder in folders for p in folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__", "api", "lib"}


def python_pin() -> str:
    return (ROOT / ".python-version").read_text().strip()


@pytest.fixture(scope="module")
def uv_bin() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        pytest.fail("uv is not installed in this environment: `make setup` installs requirements-dev.txt")
    return find_uv_bin()


@pytest.fixture(scope="module")
def bundle() -> Iterator[Path]:
    """An empty folder holding what Vercel's builder sees of this repository."""
    with tempfile.TemporaryDirectory(prefix="vercel-bundle-") as tmp:
        folder = Path(tmp)
        for name in [*SHIPPED, *SHADOWING]:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.is_file():
                shutil.copy2(source, folder / name)
        yield folder


@pytest.fixture(scope="module")
def installed(bundle: Path, uv_bin: str) -> Path:
    """The bundle with requirements.txt installed into `_deps/` for the running interpreter."""
    result = subprocess.run(
        [uv_bin, "pip", "install", "--python", sys.executable, "--target", str(bundle / DEPS),
         "--no-compile", "--quiet", "-r", "requirements.txt"],
        cwd=bundle, capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"uv could not install requirements.txt:\n{result.stderr}")
    return bundle


def run_clean(bundle: Path, action: str, names: list[str]) -> dict:
    """Import (or just find) modules in a fresh interpreter that sees only the bundle."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, str(bundle), str(bundle / DEPS), action, *names],
        cwd=bundle, capture_output=True, text=True, timeout=300, env={**os.environ, "VERCEL": "1"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    leaks = [p for p in report["sys_path"] if Path(p).is_relative_to(ROOT) or "site-packages" in p]
    assert not leaks, f"the clean interpreter can see this checkout or a site-packages: {leaks}"
    return report["modules"]


def test_no_manifest_shadows_requirements_txt(bundle: Path) -> None:
    for folder in (ROOT, ROOT / "api", bundle, bundle / "api"):
        present = [name for name in SHADOWING if (folder / name).exists()]
        assert not present, (
            f"{present} in {folder}: Vercel's builder would install from it instead of requirements.txt "
            "(keep tool settings in ruff.toml and pytest.ini)"
        )


def test_requirements_txt_is_what_the_builder_can_read() -> None:
    # The builder converts the file itself and does not follow `-r` includes: keep it to plain
    # requirements, the production set named directly.
    assert {"pydantic", "psycopg", "psycopg-pool"} <= declared_requirements()


def test_python_version_is_pinned_for_vercel() -> None:
    pin = python_pin()
    assert re.fullmatch(r"3\.\d+", pin), f".python-version must hold one minor version, not {pin!r}"
    assert int(pin.split(".")[1]) >= 12, "Vercel's Python runtime needs 3.12 or newer"


def test_the_bundle_has_functions() -> None:
    assert FUNCTIONS, "no api/*.py found"


@pytest.mark.parametrize("module", FUNCTIONS)
def test_function_imports_from_a_clean_install(installed: Path, module: str) -> None:
    entry = run_clean(installed, "import", [module])[module]
    assert "error" not in entry, f"{module} fails to import on a fresh install: {entry['error']}"
    assert Path(entry["file"]).is_relative_to(installed), f"{module} was imported from {entry['file']}"
    assert entry["app"] and entry["callable"], f"{module} has no ASGI `app`"


def test_every_third_party_import_is_installed_and_listed(installed: Path) -> None:
    needed = sorted(third_party_imports([installed / "api", installed / "lib"]) - set(LOCAL_ONLY))
    found = run_clean(installed, "find", needed)
    declared = declared_requirements()
    missing, unlisted = [], []
    for name in needed:
        entry = found[name]
        if entry.get("error") or not entry["file"] or not Path(entry["file"]).is_relative_to(installed / DEPS):
            missing.append(name)
            continue
        providers = {_canonical(d) for d in entry["distributions"]}
        if not providers & declared and INSTALLED_WITH.get(name) not in declared:
            unlisted.append(f"{name} (from {', '.join(sorted(providers))})")
    assert not missing, (
        f"imported by api/ or lib/ but not installed from requirements.txt: {missing} "
        f"(add them, or list local-only modules in LOCAL_ONLY)"
    )
    assert not unlisted, f"imported directly but only installed as another package's dependency: {unlisted}"


def test_requirements_resolve_for_the_pinned_python(uv_bin: str, tmp_path: Path) -> None:
    """The wheels Vercel needs exist: resolve for its Python and platform without installing."""
    result = subprocess.run(
        [uv_bin, "pip", "compile", str(ROOT / "requirements.txt"), "--python", sys.executable,
         "--python-version", python_pin(), "--python-platform", VERCEL_PLATFORM,
         "--no-header", "--no-annotate", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"requirements.txt does not resolve for Python {python_pin()}:\n{result.stderr}"
    resolved = {_canonical(line.split("==")[0].split("[")[0]) for line in result.stdout.splitlines() if "==" in line}
    assert declared_requirements() <= resolved
