"""Bundle size: what a fresh install of `requirements.txt` weighs, against the peers' installs
for the same job, next to Vercel's 250 MB limit (and the slower build path above 225 MB).

Each set is installed with `pip install --target` into an empty folder (so no pip or setuptools),
without bytecode, as Vercel's uv install does, and cached in `bench/.data/bundle/` until its
requirements file changes.

    .venv/bin/python bench/bundle_size.py [--json out.json]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import DATA_DIR, PROJECT_ROOT, requirements_digest, requirements_file  # noqa: E402
from measure import arguments, emit, table  # noqa: E402

VERCEL_LIMIT_MB = 250
VERCEL_SLOW_PATH_MB = 225
MB = 1024 * 1024

SETS = {
    "this bundle (requirements.txt)": "project",
    "LangChain (openai + postgres + text splitters)": "langchain",
    "LlamaIndex (core + postgres store + openai llm)": "llamaindex",
    "LiteLLM": "litellm",
}
# Our own code ships too: the functions, the library and the static files.
OWN_CODE = ["api", "lib", "public", "vercel.json"]


def install(name: str) -> Path:
    """The folder holding a fresh install of one requirements set, built once per pin set."""
    requirements = requirements_file(name)
    target = DATA_DIR / "bundle" / f"{name}-{requirements_digest(requirements)[:12]}"
    done = target / ".complete"
    if done.exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    for stale in (DATA_DIR / "bundle").glob(f"{name}-*"):
        shutil.rmtree(stale)
    target.mkdir(parents=True)
    print(f"bundle_size: installing {requirements.name} into {target.name} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "install",
                    "--no-compile", "--target", str(target), "-r", str(requirements)], check=True)
    done.write_text("")
    return target


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def distribution_of(entry: str) -> str:
    """Group `numpy`, `numpy.libs` and `numpy-2.1.0.dist-info` under one name."""
    name = re.sub(r"-[0-9][^-]*\.(dist-info|egg-info)$", "", entry)
    name = re.sub(r"\.(libs|data)$", "", name)
    name = name.removesuffix(".py").removeprefix("_")
    return name.lower().replace("-", "_")


def measure_set(target: Path) -> dict:
    sizes: dict[str, int] = {}
    for entry in target.iterdir():
        if entry.name in (".complete", "bin", "__pycache__"):
            continue
        key = distribution_of(entry.name)
        sizes[key] = sizes.get(key, 0) + tree_bytes(entry)
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda item: item[1], reverse=True)
    return {"total_mb": total / MB, "packages": len(sizes),
            "largest": [{"name": n, "mb": round(b / MB, 2)} for n, b in largest[:8]]}


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    results: dict[str, dict] = {}
    for label, name in SETS.items():
        results[label] = measure_set(install(name))
    own_mb = sum(tree_bytes(PROJECT_ROOT / p) for p in OWN_CODE if (PROJECT_ROOT / p).exists()) / MB
    ours = results["this bundle (requirements.txt)"]
    ours["own_code_mb"] = own_mb
    bundle_mb = ours["total_mb"] + own_mb

    rows = []
    for label, data in results.items():
        top = ", ".join(f"{p['name']} {p['mb']:.1f}" for p in data["largest"][:5])
        rows.append([label, f"{data['total_mb']:.1f}", data["packages"],
                     f"{data['total_mb'] / ours['total_mb']:.1f}x", top])
    figures = {"sets": results, "bundle_mb": bundle_mb, "limit_mb": VERCEL_LIMIT_MB,
               "slow_path_mb": VERCEL_SLOW_PATH_MB, "margin_mb": VERCEL_SLOW_PATH_MB - bundle_mb}
    largest = "\n".join(f"| {p['name']} | {p['mb']:.1f} |" for p in ours["largest"])
    markdown = "\n".join([
        "## Bundle size",
        "",
        "A fresh `pip install --target` of each pinned set into an empty folder, without bytecode "
        "(as Vercel's uv install), so pip and setuptools are not counted. Sizes are the bytes of "
        f"the files, in MiB, for CPython {sys.version_info.major}.{sys.version_info.minor} on "
        "Linux x86_64. The peers' sets do less than ours (no Anthropic, Groq or S3 client).",
        "",
        table(["install", "MB", "distributions", "vs this bundle", "largest (MB)"], rows),
        "",
        f"This bundle as deployed: {ours['total_mb']:.1f} MB of dependencies + {own_mb:.1f} MB of "
        f"our own code = **{bundle_mb:.1f} MB**, against Vercel's {VERCEL_LIMIT_MB} MB limit and the "
        f"{VERCEL_SLOW_PATH_MB} MB threshold of its slower build path: {VERCEL_SLOW_PATH_MB - bundle_mb:.0f} MB "
        "of margin.",
        "",
        "Largest dependencies of this bundle:",
        "",
        "| distribution | MB |",
        "| --- | --- |",
        largest,
    ])
    emit(args, "bundle_size", figures, markdown)


if __name__ == "__main__":
    main()
