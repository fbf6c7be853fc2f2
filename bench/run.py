"""Run the benchmark suite and rewrite `bench/RESULTS.md` (what `make bench` does).

The fast set runs in a few minutes; `--full` adds the slow ones (SciFact retrieval quality, the
100k-chunk latency run, the ingest comparison) when their scripts are present. Each benchmark is
a script `bench/<name>.py` run as a subprocess with `--json PATH`; it prints a Markdown section
and writes its figures. Sections of benchmarks not run this time are kept from the previous
RESULTS.md, marked with the date they were measured.

    .venv/bin/python bench/run.py                # the fast set
    .venv/bin/python bench/run.py --full         # everything but the million-chunk run
    .venv/bin/python bench/run.py --full --million  # and that too (make bench-full BENCH_FLAGS=--million)
    .venv/bin/python bench/run.py --only gateway --only chunking
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import BENCH_DIR, DATA_DIR, PROJECT_ROOT, ensure_bench_requirements  # noqa: E402
from measure import machine  # noqa: E402

FAST = ["cold_start", "bundle_size", "gateway", "chunking", "auth_verify"]
SLOW = ["ingest", "retrieval_latency", "scifact", "load", "observe"]
# runs of a benchmark script with arguments of their own, each its own section: name -> (script, arguments)
MILLION = {"retrieval_latency_1m": ("retrieval_latency", ["--chunks", "1000000", "--variants", "halfvec,binary"])}
RESULTS = BENCH_DIR / "RESULTS.md"
RESULTS_DIR = DATA_DIR / "results"
PEER_PACKAGES = ["langchain-core", "langchain-openai", "langchain-postgres", "langchain-text-splitters",
                 "llama-index-core", "litellm", "semantic-text-splitter", "chonkie"]
_SECTION = re.compile(r"<!-- bench:(?P<name>[a-z0-9_]+) (?P<date>[^>]*?) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->",
                      re.S)


def run_benchmark(name: str, quick: bool) -> dict:
    """Run `bench/<name>.py --json ...`; its JSON payload with its Markdown, or the failure."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"{name}.json"
    output.unlink(missing_ok=True)
    script_name, arguments = MILLION.get(name, (name, []))
    script = BENCH_DIR / f"{script_name}.py"
    extra = arguments + (["--quick"] if quick and "--quick" in _options_of(script) else [])
    command = " ".join([".venv/bin/python", f"bench/{script_name}.py", *extra])
    print(f"bench: running {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    process = subprocess.run([sys.executable, str(script), "--json", str(output), *extra],
                             cwd=PROJECT_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    print(f"bench: {name} took {elapsed:.0f} s (exit status {process.returncode})", file=sys.stderr, flush=True)
    if process.returncode == 0 and output.exists():
        payload = json.loads(output.read_text())
        if not isinstance(payload, dict) or "markdown" not in payload:
            payload = {"figures": payload}
            payload["markdown"] = _markdown_of(process.stdout)
        payload.setdefault("command", command)
        payload["elapsed_s"] = elapsed
        return payload
    tail = "\n".join((process.stderr or process.stdout).strip().splitlines()[-15:])
    return {"benchmark": name, "command": command, "failed": True,
            "markdown": f"## {name}\n\nThis benchmark failed in this run (exit status "
                        f"{process.returncode}):\n\n```\n{tail}\n```"}


def _options_of(script: Path) -> str:
    """The script's --help text: not every benchmark takes --quick."""
    process = subprocess.run([sys.executable, str(script), "--help"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True)
    return process.stdout


def _markdown_of(stdout: str) -> str:
    """What a script printed, from its first heading on (progress lines before it are dropped)."""
    match = re.search(r"^#{1,3} ", stdout, re.M)
    return stdout[match.start():] if match else stdout


def previous_sections() -> dict[str, tuple[str, str]]:
    """{name: (date, body)} of every benchmark section in the current RESULTS.md."""
    if not RESULTS.exists():
        return {}
    return {m["name"]: (m["date"], m["body"]) for m in _SECTION.finditer(RESULTS.read_text())}


def previous_notes() -> list[str]:
    """The dated notes of the current RESULTS.md's header (`- 2026-11-29: ...`): what was measured
    apart from a `run.py` run, and how. Kept, as the sections they describe are."""
    if not RESULTS.exists():
        return []
    header = RESULTS.read_text().split("<!-- bench:", 1)[0]
    return [line for line in header.splitlines() if re.match(r"- \d{4}-\d{2}-\d{2}\b", line)]


def peer_versions() -> dict[str, str]:
    versions = {}
    for path in sorted(BENCH_DIR.glob("requirements-*.txt")):
        for line in path.read_text().splitlines():
            name, _, version = line.partition("==")
            if name.strip().lower() in PEER_PACKAGES and version:
                versions[name.strip().lower()] = version.strip()
    return versions


def section(name: str, date: str, body: str) -> str:
    return f"<!-- bench:{name} {date} -->\n{body.rstrip()}\n<!-- /bench:{name} -->"


def render(results: dict[str, dict], kept: dict[str, tuple[str, str]], order: list[str], full: bool,
           quick: bool, notes: list[str] = ()) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    versions = ", ".join(f"{name} {version}" for name, version in sorted(peer_versions().items()))
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py` (`make bench`); do not edit by hand. What each figure means and "
        "how it is measured: [bench/README.md](README.md).",
        "",
        f"- Last run: {now}, `{' '.join(['.venv/bin/python bench/run.py', *sys.argv[1:]])}`"
        + (" (quick: fewer runs, figures only indicative)" if quick else "")
        + ". A section not re-run by it is kept, marked with the date it was measured.",
        *notes,
        f"- Machine: {host['cores']} cores ({host['cpu']}), {host['memory_gb']} GB memory, "
        f"Python {host['python']}, {host['platform']}. The machine was shared with other work "
        "while this ran, so absolute times are noisy; ratios are taken within one run.",
        f"- Peers (pinned in `bench/requirements-*.txt`): {versions}.",
        "",
    ]
    # sections of no benchmark script run here (measured by hand, or by a script run on its own)
    # are kept too, after the others
    for name in order + [name for name in kept if name not in order]:
        if name in results:
            payload = results[name]
            body = payload["markdown"].rstrip()
            if not payload.get("failed"):
                body += f"\n\nCommand: `{payload['command']}`"
            lines += [section(name, now, body), ""]
        elif name in kept:
            date, body = kept[name]
            body = re.sub(r"^\*Kept from an earlier run[^\n]*\n\n", "", body)
            lines += [section(name, date, f"*Kept from an earlier run ({date}); not re-run this time.*\n\n"
                                          + body.strip()), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also run the slow benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer runs everywhere (checks the harness)")
    parser.add_argument("--only", action="append", default=[], help="run just this benchmark (repeatable)")
    parser.add_argument("--million", action="store_true",
                        help="with --full, also the latency run at 1,000,000 chunks (about an hour the first "
                             "time: loading and index builds; its data is kept in bench/.data/)")
    args = parser.parse_args()

    present = [name for name in FAST + SLOW if (BENCH_DIR / f"{name}.py").exists()] + list(MILLION)
    wanted = args.only or [n for n in present if n in FAST or (args.full and (n in SLOW or args.million))]
    unknown = [n for n in wanted if n not in present]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; have: {', '.join(present)}")
    if any(name in SLOW or name in MILLION for name in wanted):
        ensure_bench_requirements()
    results = {name: run_benchmark(name, args.quick) for name in wanted}
    RESULTS.write_text(render(results, previous_sections(), present, args.full, args.quick, previous_notes()))
    failed = [name for name, payload in results.items() if payload.get("failed")]
    print(f"bench: wrote {RESULTS.relative_to(PROJECT_ROOT)}"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
