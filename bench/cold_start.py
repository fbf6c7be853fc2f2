"""Cold start: wall time and peak memory of a fresh process importing each `api/` module (and
serving one request), against fresh processes importing what the same job needs from the peers.

Each target runs once to warm the file cache and the bytecode, then N times, round-robin across
targets so that a noisy neighbour slows every target alike; ratios are taken run by run.

    .venv/bin/python bench/cold_start.py [--runs 10] [--quick] [--json out.json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import PROJECT_ROOT, ensure_env  # noqa: E402
from measure import ProcessRun, arguments, emit, ms, run_process, summary, table  # noqa: E402

PROJECT_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
IMPORT_TARGET_S = 0.150
MEMORY_TARGET_MB = 50
SPEEDUP_TARGET = 8.0
RAG_NAMESPACE = "bench-cold"

# What each peer needs for this bundle's job (chat gateway, pgvector store, text splitting).
PEER_IMPORTS = {
    "LangChain": ("langchain", "import langchain_openai, langchain_postgres, langchain_text_splitters"),
    "LlamaIndex": ("llamaindex", "import llama_index.core, llama_index.vector_stores.postgres, "
                   "llama_index.llms.openai"),
    "LiteLLM": ("litellm", "import litellm"),
}
# The floor pydantic sets under every function with a request model: the package, then what our
# models import from it with one strict model built and used (as a first request builds them).
PYDANTIC_IMPORTS = {
    "import pydantic": "import pydantic",
    "pydantic: BaseModel, Field, validators + one model built": (
        "from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator\n"
        "class Probe(BaseModel):\n"
        "    model_config = ConfigDict(extra='forbid')\n"
        "    name: str = Field(min_length=1, max_length=64)\n"
        "    tags: list[str] = []\n"
        "Probe(name='x')"),
}
SDK_IMPORTS = {"openai SDK": "import openai", "anthropic SDK": "import anthropic", "groq SDK": "import groq"}

# A child times its own import and request and prints them with its peak RSS (VmHWM starts afresh
# at exec, unlike wait4's ru_maxrss, which counts the parent's pages copied at fork); os._exit
# skips interpreter teardown, which a serverless instance never pays for either.
PEAK_RSS = ("int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
IMPORT_CHILD = """\
import time
_started = time.perf_counter()
{statement}
_imported = time.perf_counter()
import json, os, sys
sys.stdout.write(json.dumps({{"import_s": _imported - _started, "peak_rss_kb": {peak}}}))
sys.stdout.flush()
os._exit(0)
"""

# The first chat request of a fresh process, through a peer, against the fake OpenAI server.
PEER_REQUEST_CHILD = """\
import time
_started = time.perf_counter()
{statement}
_imported = time.perf_counter()
{request}
_served = time.perf_counter()
import json, os, sys
sys.stdout.write(json.dumps({{"import_s": _imported - _started, "request_s": _served - _imported,
                              "peak_rss_kb": {peak}}}))
sys.stdout.flush()
os._exit(0)
"""
_CHAT = "[{'role': 'user', 'content': 'Hello'}]"
PEER_REQUESTS = {
    "LangChain": "from langchain_openai import ChatOpenAI\n"
                 "ChatOpenAI(model='gpt-4o-mini', base_url=os.environ['OPENAI_BASE_URL'], api_key='sk-bench', "
                 "max_retries=0).invoke('Hello')",
    "LlamaIndex": "from llama_index.llms.openai import OpenAI\n"
                  "OpenAI(model='gpt-4o-mini', api_base=os.environ['OPENAI_BASE_URL'], api_key='sk-bench', "
                  "max_retries=0).complete('Hello')",
    "LiteLLM": "litellm.completion(model='openai/gpt-4o-mini', api_base=os.environ['OPENAI_BASE_URL'], "
               f"api_key='sk-bench', num_retries=0, messages={_CHAT})",
}
SDK_REQUEST = ("openai.OpenAI(base_url=os.environ['OPENAI_BASE_URL'], api_key='sk-bench', max_retries=0)"
               f".chat.completions.create(model='gpt-4o-mini', messages={_CHAT})")

SERVE_CHILD = """\
import time
_started = time.perf_counter()
import importlib
module = importlib.import_module("api.{name}")
_imported = time.perf_counter()
import asyncio, json, os, sys

async def serve(app, method, body):
    raw = json.dumps(body).encode() if body is not None else b""
    scope = {{"type": "http", "method": method, "path": "/api/{name}", "query_string": b"",
             "client": ("127.0.0.1", 0), "headers": [(b"content-type", b"application/json")]}}
    sent = False
    status = 0
    chunks = []

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {{"type": "http.request", "body": raw, "more_body": False}}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)

status, body = asyncio.run(serve(module.app, {method!r}, {body!r}))
_served = time.perf_counter()
sys.stdout.write(json.dumps({{"import_s": _imported - _started, "request_s": _served - _imported,
                              "status": status, "body": body[:300].decode(errors="replace"),
                              "peak_rss_kb": {peak}}}))
sys.stdout.flush()
os._exit(0)
"""


@dataclass
class Target:
    """One kind of fresh process to measure."""

    label: str
    group: str  # "baseline" | "api import" | "api request" | "peer" | "sdk" | "peer request"
    python: Path
    code: str
    runs: list[ProcessRun] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    error: str | None = None


def api_modules() -> list[str]:
    return sorted(p.stem for p in (PROJECT_ROOT / "api").glob("*.py") if not p.name.startswith("_"))


def request_targets(modules: list[str]) -> list[tuple[str, str, dict | None]]:
    """(module, method, body) for the requests a cold instance serves first, for what exists."""
    wanted = [
        ("health", "GET", None),
        ("ai_execute", "POST", {"prompt": "Hello", "model": "local/echo"}),
        ("ai_execute", "POST", {"prompt": "Hello", "model": "openai/gpt-4o-mini"}),
        ("rag", "POST", {"query": "What does the license permit?", "namespace": RAG_NAMESPACE,
                         "answer": False, "top_k": 5}),
    ]
    return [w for w in wanted if w[0] in modules]


def build_targets(quick: bool) -> list[Target]:
    targets = [Target("python -c pass", "baseline", PROJECT_PYTHON,
                      IMPORT_CHILD.format(statement="pass", peak=PEAK_RSS))]
    for label, statement in PYDANTIC_IMPORTS.items():
        targets.append(Target(label, "baseline", PROJECT_PYTHON, IMPORT_CHILD.format(statement=statement, peak=PEAK_RSS)))
    modules = api_modules()
    for name in modules:
        targets.append(Target(f"import api.{name}", "api import", PROJECT_PYTHON,
                              IMPORT_CHILD.format(statement=f"import api.{name}", peak=PEAK_RSS)))
    for name, method, body in request_targets(modules):
        targets.append(Target(f"api.{name}: import + {method} {_describe(body)}", "api request",
                              PROJECT_PYTHON, SERVE_CHILD.format(name=name, method=method, body=body, peak=PEAK_RSS)))
    for label, (env, statement) in PEER_IMPORTS.items():
        targets.append(Target(label, "peer", ensure_env(env), IMPORT_CHILD.format(statement=statement, peak=PEAK_RSS)))
    for label, statement in SDK_IMPORTS.items():
        targets.append(Target(label, "sdk", PROJECT_PYTHON, IMPORT_CHILD.format(statement=statement, peak=PEAK_RSS)))
    for label, request in PEER_REQUESTS.items():
        env, statement = PEER_IMPORTS[label]
        targets.append(Target(f"{label}: import + first chat request", "peer request", ensure_env(env),
                              PEER_REQUEST_CHILD.format(statement=statement + "\nimport os", request=request,
                                                        peak=PEAK_RSS)))
    targets.append(Target("openai SDK: import + first chat request", "peer request", PROJECT_PYTHON,
                          PEER_REQUEST_CHILD.format(statement="import openai, os", request=SDK_REQUEST,
                                                    peak=PEAK_RSS)))
    return targets


def _describe(body: dict | None) -> str:
    if body is None:
        return "(health)"
    if body.get("model") == "openai/gpt-4o-mini":
        return "model openai/gpt-4o-mini (fake server)"
    if "model" in body:
        return f"model {body['model']}"
    return "search only (answer: false)"


def child_env(database_url: str | None, fake_url: str | None = None) -> dict[str, str]:
    """The parent's environment minus anything that would change the work, plus offline switches."""
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL") and k != "PYTHONDONTWRITEBYTECODE"}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # otherwise litellm fetches its price list at import
    env["HF_HUB_OFFLINE"] = "1"
    if database_url:
        env["DATABASE_URL"] = database_url
    if fake_url:
        env.update(OPENAI_BASE_URL=fake_url, OPENAI_API_KEY="sk-bench", CACHE_TTL_S="0")
    return env


def prepare_database(modules: list[str]) -> tuple[str | None, int]:
    """A migrated database for the request targets, with a small index for the search-only rag;
    its URL and how many chunks the index holds."""
    if not request_targets(modules):
        return None, 0
    import pg

    url = pg.fresh_database("cold_start")
    if "rag" not in modules:
        return url, 0
    _ingest_small_index(url)
    import psycopg

    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        return url, conn.execute("SELECT count(*) FROM chunks").fetchone()[0]


def _ingest_small_index(url: str) -> None:
    """The license texts on the machine, copied as .txt files (their names end in version numbers)."""
    from envs import DATA_DIR

    folder = DATA_DIR / "cold_start_docs"
    folder.mkdir(parents=True, exist_ok=True)
    sources = {p.resolve() for p in Path("/usr/share/common-licenses").glob("*") if p.is_file()}
    for source in sorted(sources):
        (folder / f"{source.name}.txt").write_bytes(source.read_bytes())
    paths = sorted(str(p) for p in folder.glob("*.txt")) or [str(PROJECT_ROOT / "README.md")]
    result = run_process([str(PROJECT_PYTHON), "-m", "lib.cli", "ingest", *paths, "--namespace",
                          RAG_NAMESPACE], cwd=PROJECT_ROOT, env=child_env(url), timeout_s=600)
    if result.returncode != 0:
        print(f"cold_start: could not build the small rag index: {result.stdout[-500:]}", file=sys.stderr)


def measure(targets: list[Target], runs: int, env: dict[str, str]) -> None:
    for round_number in range(runs + 1):  # round 0 warms caches and writes bytecode
        for target in targets:
            if target.error:
                continue
            result = run_process([str(target.python), "-c", target.code], cwd=PROJECT_ROOT, env=env)
            if result.returncode != 0:
                target.error = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
                continue
            report = json.loads(result.stdout)
            status = report.get("status")
            if status is not None and status >= 400:
                target.error = f"HTTP {status}: {report.get('body', '')[:160]}"
                continue
            if round_number > 0:
                target.runs.append(result)
                target.reports.append(report)


def figures_for(target: Target) -> dict:
    if target.error or not target.runs:
        return {"label": target.label, "group": target.group, "error": target.error or "no runs"}
    figures = {
        "label": target.label, "group": target.group,
        "wall_s": summary([r.wall_s for r in target.runs]),
        "peak_rss_mb": summary([r["peak_rss_kb"] / 1024 for r in target.reports]),
        "import_s": summary([r["import_s"] for r in target.reports]),
    }
    if "request_s" in target.reports[0]:
        figures["request_s"] = summary([r["request_s"] for r in target.reports])
    return figures


def paired_ratio(slow: Target, fast: Target, key: str = "wall_s") -> float | None:
    """The median of run-by-run ratios: each pair ran back to back in the same round."""
    if slow.error or fast.error or not slow.runs or not fast.runs:
        return None
    pairs = zip([getattr(r, key) for r in slow.runs], [getattr(r, key) for r in fast.runs], strict=False)
    return statistics.median(s / f for s, f in pairs if f > 0)


def render(targets: list[Target], runs: int, index_chunks: int) -> tuple[dict, str]:
    by_label = {t.label: t for t in targets}
    langchain = by_label["LangChain"]
    rows = []
    figures = {"runs": runs, "rag_index_chunks": index_chunks, "targets": [], "targets_met": {}}
    for target in targets:
        data = figures_for(target)
        figures["targets"].append(data)
        if "error" in data:
            rows.append([target.label, "failed: " + data["error"].replace("|", "/"), "", "", "", "", ""])
            continue
        vs_langchain = paired_ratio(langchain, target) if target.group.startswith("api") else None
        data["langchain_over_this"] = vs_langchain
        rows.append([
            target.label,
            ms(data["wall_s"]["p50"]), ms(data["wall_s"]["p95"]),
            ms(data["import_s"]["p50"]),
            ms(data["request_s"]["p50"]) if "request_s" in data else "",
            f"{data['peak_rss_mb']['p50']:.1f}",
            f"{vs_langchain:.1f}x" if vs_langchain else "",
        ])
    api_imports = [f for f in figures["targets"] if f["group"] == "api import" and "error" not in f]
    figures["targets_met"] = {
        "import_under_150ms": all(f["wall_s"]["p50"] < IMPORT_TARGET_S for f in api_imports),
        "memory_under_50mb": all(f["peak_rss_mb"]["p50"] < MEMORY_TARGET_MB for f in api_imports),
        "8x_faster_than_langchain": all((f.get("langchain_over_this") or 0) >= SPEEDUP_TARGET
                                        for f in api_imports),
    }
    slowest = max(api_imports, key=lambda f: f["wall_s"]["p50"], default=None)
    heaviest = max(api_imports, key=lambda f: f["peak_rss_mb"]["p50"], default=None)
    lines = [
        "## Cold start",
        "",
        f"A fresh process per run; {runs} runs per row after one warm-up, interleaved round-robin. "
        "Wall = process start to exit as seen by the parent (includes interpreter start-up, see the "
        "`python -c pass` row); import = the import alone, timed inside the child; request = serving "
        "one request in-process through the function's ASGI app (Postgres connection and ledger "
        f"write included; the rag search runs on a small index of {index_chunks} chunks of license "
        "texts, embedded with the default offline model); RSS = the child's peak resident memory. `LangChain / this` is the median of "
        "run-by-run ratios of LangChain's wall time to this row's.",
        "",
        table(["process", "wall p50 ms", "wall p95 ms", "import p50 ms", "request p50 ms",
               "peak RSS MB", "LangChain / this"], rows),
        "",
    ]
    if slowest and heaviest:
        met = figures["targets_met"]
        lines.append(
            f"Targets for every `api/` module: import under 150 ms — slowest is `{slowest['label']}` at "
            f"{ms(slowest['wall_s']['p50'])} ms ({'met' if met['import_under_150ms'] else 'NOT met'}); under "
            f"50 MB — heaviest is `{heaviest['label']}` at {heaviest['peak_rss_mb']['p50']:.1f} MB "
            f"({'met' if met['memory_under_50mb'] else 'NOT met'}); at least 8x faster than LangChain's "
            f"import ({'met' if met['8x_faster_than_langchain'] else 'NOT met'})."
        )
    floor = by_label.get("pydantic: BaseModel, Field, validators + one model built")
    if slowest and floor and floor.runs:
        pydantic_s = statistics.median(r["import_s"] for r in floor.reports)
        figures["pydantic_import_s"] = pydantic_s
        lines.append(
            f"Of `{slowest['label']}`'s {ms(slowest['import_s']['p50'])} ms of import, pydantic itself (what our "
            f"request models import from it, one model built) takes {ms(pydantic_s)} ms in the same run; our "
            f"modules add the other {ms(slowest['import_s']['p50'] - pydantic_s)} ms.")
    ours = by_label.get("api.ai_execute: import + POST model openai/gpt-4o-mini (fake server)")
    peers = [t for t in targets if t.group == "peer request"]
    if ours and not ours.error and ours.runs:
        parts = []
        for peer in peers:
            ratio_value = paired_ratio(peer, ours)
            if ratio_value:
                parts.append(f"{peer.label.split(':')[0]} {ms(statistics.median(r.wall_s for r in peer.runs))} ms "
                             f"({ratio_value:.1f}x ours)")
        figures["first_chat_request"] = {p.label: paired_ratio(p, ours) for p in peers}
        lines += ["", (
            "First chat request of a fresh process (import, then one call to the fake OpenAI server; "
            "ours also opens a Postgres connection and writes its ledger row): /api/ai_execute "
            f"{ms(statistics.median(r.wall_s for r in ours.runs))} ms; " + "; ".join(parts) + ".")]
    return figures, "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per target (default 10)")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    targets = build_targets(args.quick)
    database_url, index_chunks = prepare_database(api_modules())
    from gateway import start_fake_server

    fake, fake_url = start_fake_server()
    try:
        measure(targets, runs, child_env(database_url, fake_url))
    finally:
        fake.stop()
    figures, markdown = render(targets, runs, index_chunks)
    emit(args, "cold_start", figures, markdown)


if __name__ == "__main__":
    main()
