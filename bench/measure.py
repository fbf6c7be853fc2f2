"""What every benchmark shares: timing statistics, fresh-process measurements, Markdown tables and
the `--json PATH` convention that `bench/run.py` relies on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` percentile (0..1) with linear interpolation, as numpy's default does."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p95 and the count, which is what every table reports."""
    return {"p50": statistics.median(values) if values else float("nan"),
            "p95": percentile(values, 0.95), "n": len(values)}


@dataclass
class ProcessRun:
    """One fresh process: wall time seen from outside, its peak RSS, and what it printed."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_process(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout_s: float = 120) -> ProcessRun:
    """Start `argv`, wait for it, and read its own peak RSS from `wait4` (not the max of all children).

    Output goes to temporary files rather than pipes so that the blocking `wait4` is the only wait.
    """
    import tempfile
    import threading

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        killer = threading.Timer(timeout_s, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(wall, usage.ru_maxrss / 1024, process.returncode,
                          out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def machine() -> dict[str, Any]:
    """Cores, memory and Python, for the header of RESULTS.md and each JSON file."""
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": memory_gb, "cpu": cpu,
            "python": platform.python_version(), "platform": platform.platform()}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; numbers are printed as given, so callers format them."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ratio(numerator: float, denominator: float) -> str:
    if not denominator or denominator != denominator:
        return "n/a"
    return f"{numerator / denominator:.1f}x"


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: `--json PATH` for run.py, `--quick` for a smoke run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="fewer runs: checks the harness, not the figures")
    return parser


def emit(args: argparse.Namespace, name: str, figures: dict[str, Any], markdown: str) -> None:
    """Print the Markdown section and write the JSON that run.py folds into RESULTS.md."""
    print(markdown)
    if args.json:
        payload = {"benchmark": name, "command": command_line(), "machine": machine(),
                   "figures": figures, "markdown": markdown}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def command_line() -> str:
    """How this figure was produced, relative to the project root, without the --json plumbing."""
    argv = list(sys.argv)
    if "--json" in argv:
        index = argv.index("--json")
        del argv[index:index + 2]
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    return " ".join([".venv/bin/python", str(script), *argv[1:]])
