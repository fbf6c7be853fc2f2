"""Gateway overhead: per-request latency through `/api/ai_execute` on the local server (ledger
write to Postgres included), through LiteLLM's `completion()`, and through the bare `openai` SDK,
all against the same fake OpenAI-compatible server on loopback that answers at once.

Each client is a long-lived process in its own environment. The run alternates between them in
rounds so a noisy neighbour hits every client alike; requests are sent one at a time.

    .venv/bin/python bench/gateway.py [--requests 2000] [--quick] [--json out.json]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import BENCH_DIR, PROJECT_ROOT, ensure_env  # noqa: E402
from measure import arguments, emit, ms, summary, table  # noqa: E402

PROJECT_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
MODES = {"json": "non-streamed (full response)", "stream": "streamed (time to first text)"}
LABELS = {
    "bundle": "this bundle: POST /api/ai_execute (local server, ledger in Postgres)",
    "asgi": "this bundle in-process: the same app called through ASGI (no HTTP hop)",
    "litellm": "LiteLLM completion()",
    "openai": "bare openai SDK",
    "httpx": "bare HTTP request (httpx, no SDK)",
}


class Process:
    """A child process that we stop, by its own pid, whatever happens."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None, stdin: bool = False,
                 quiet: bool = False) -> None:
        self.popen = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,
        )

    def ask(self, command: dict) -> dict:
        assert self.popen.stdin and self.popen.stdout
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.popen.args[:3]} exited with status {self.popen.wait()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: Process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError("the local server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


def start_fake_server() -> tuple[Process, str]:
    fake = Process([str(PROJECT_PYTHON), str(BENCH_DIR / "fake_openai.py")])
    assert fake.popen.stdout
    port = int(fake.popen.stdout.readline())
    return fake, f"http://127.0.0.1:{port}/v1"


def bundle_env(fake_url: str, database_url: str) -> dict[str, str]:
    """The function's environment: the fake as OpenAI, the benchmark database, no cache or limits."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.update(DATABASE_URL=database_url, OPENAI_BASE_URL=fake_url, OPENAI_API_KEY="sk-bench",
               CACHE_TTL_S="0", API_KEYS="", RATE_LIMIT_RPM="0")
    return env


def start_local_server(env: dict[str, str]) -> tuple[Process, str]:
    """`lib.cli.server.create_app()` under uvicorn, as `make dev` serves it, pointed at the fake."""
    port = free_port()
    code = ("import uvicorn; from lib.cli.server import create_app; "
            f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning', "
            "access_log=False, lifespan='off')")
    server = Process([str(PROJECT_PYTHON), "-c", code], env=env, quiet=True)
    wait_for_port(port, server)
    return server, f"http://127.0.0.1:{port}"


def start_clients(fake_url: str, bundle_url: str | None, server_env: dict[str, str] | None) -> dict[str, Process]:
    script = str(BENCH_DIR / "gateway_client.py")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    clients = {}
    if bundle_url and server_env:
        clients["bundle"] = Process([str(PROJECT_PYTHON), script, "bundle", bundle_url], env=env, stdin=True)
        clients["asgi"] = Process([str(PROJECT_PYTHON), script, "asgi", ""], env=server_env, stdin=True)
    clients["litellm"] = Process([str(ensure_env("litellm")), script, "litellm", fake_url], env=env, stdin=True)
    clients["openai"] = Process([str(PROJECT_PYTHON), script, "openai", fake_url], env=env, stdin=True)
    clients["httpx"] = Process([str(PROJECT_PYTHON), script, "httpx", fake_url], env=env, stdin=True)
    return clients


def ledger_rows(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        return conn.execute("SELECT count(*) FROM usage_ledger").fetchone()[0]


def commit_latency(database_url: str, n: int = 300) -> dict:
    """What one committed single-row INSERT costs on the same Postgres: the floor of a ledger write."""
    import psycopg

    latencies = []
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("CREATE TABLE bench_commit_probe (at timestamptz NOT NULL DEFAULT now())")
        for _ in range(n):
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_commit_probe DEFAULT VALUES")
            latencies.append(time.perf_counter() - started)
        conn.execute("DROP TABLE bench_commit_probe")
    return summary(latencies)


def run_rounds(clients: dict[str, Process], requests: int, rounds: int, warmup: int) -> dict:
    """{mode: {client: [latency, ...]}}, alternating clients round by round (order rotated)."""
    samples: dict[str, dict[str, list[float]]] = {mode: {name: [] for name in clients} for mode in MODES}
    per_round = max(1, requests // rounds)
    names = list(clients)
    for mode in MODES:
        for name in names:
            clients[name].ask({"mode": mode, "n": warmup})
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                samples[mode][name] += clients[name].ask({"mode": mode, "n": per_round})["latencies"]
            print(f"gateway: {mode} round {round_number + 1}/{rounds} done", file=sys.stderr)
    return samples


def render(samples: dict, ledger: int | None, commit: dict | None, requests: int) -> tuple[dict, str]:
    figures: dict = {"requests_per_client": requests, "ledger_rows": ledger, "commit_s": commit, "modes": {}}
    sections = []
    for mode, title in MODES.items():
        stats = {name: summary(values) for name, values in samples[mode].items()}
        base = stats["openai"]
        rows = []
        for name, data in stats.items():
            overhead = (data["p50"] - base["p50"], data["p95"] - base["p95"])
            data["overhead_vs_sdk_s"] = {"p50": overhead[0], "p95": overhead[1]}
            rows.append([LABELS[name], data["n"], ms(data["p50"]), ms(data["p95"]),
                         "" if name == "openai" else f"{overhead[0] * 1000:+.2f}",
                         "" if name == "openai" else f"{overhead[1] * 1000:+.2f}",
                         f"{data['p50'] / base['p50']:.2f}x"])
        figures["modes"][mode] = stats
        sections += [f"**{title}**", "",
                     table(["client", "requests", "p50 ms", "p95 ms", "p50 over SDK ms",
                            "p95 over SDK ms", "p50 / SDK"], rows), ""]
    summary_lines = []
    if "bundle" in samples["json"]:
        for mode in MODES:
            ours = figures["modes"][mode]["bundle"]["overhead_vs_sdk_s"]
            direct = figures["modes"][mode]["asgi"]["overhead_vs_sdk_s"]
            theirs = figures["modes"][mode]["litellm"]["overhead_vs_sdk_s"]
            summary_lines.append(
                f"- {MODES[mode]}: /api/ai_execute adds {ours['p50'] * 1000:.2f} ms at p50 "
                f"({ours['p95'] * 1000:.2f} ms at p95) over the bare SDK through the local server, "
                f"{direct['p50'] * 1000:.2f} ms ({direct['p95'] * 1000:.2f} ms) in-process; LiteLLM adds "
                f"{theirs['p50'] * 1000:.2f} ms ({theirs['p95'] * 1000:.2f} ms).")
        if ledger is not None:
            summary_lines.append(f"- The ledger holds {ledger} rows after the run: one per request "
                                 "through /api/ai_execute (both rows), warm-up included.")
        if commit is not None:
            summary_lines.append(
                f"- For scale: one committed single-row INSERT on the same Postgres takes "
                f"{ms(commit['p50'])} ms at p50 ({ms(commit['p95'])} ms at p95) here; a non-streamed "
                "answer waits for its ledger row, a streamed one writes it after the last token.")
    else:
        summary_lines.append("- /api/ai_execute is not in this checkout yet: only the peers were measured.")
    markdown = "\n".join([
        "## Gateway overhead",
        "",
        "One fake OpenAI-compatible server on loopback (`bench/fake_openai.py`, prebuilt answers) "
        "serves every client; requests go one at a time, alternating between clients in rounds, "
        "after a warm-up. /api/ai_execute is measured end to end from an HTTP client, so its figure "
        "includes one more loopback HTTP hop than the SDK's (the bare-HTTP row shows what a hop "
        "costs; the local server is uvicorn with its pure-Python h11 parser, as `make dev` runs it), "
        "plus validation, the provider call through the openai SDK, and the ledger write to Postgres. "
        "The in-process row calls the same app through ASGI, without that hop, which is what LiteLLM's "
        "row compares with. Streamed figures are the time until the first text reaches the caller.",
        "",
        *sections,
        *summary_lines,
    ])
    return figures, markdown


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per client and mode")
    parser.add_argument("--rounds", type=int, default=4, help="alternations between clients")
    args = parser.parse_args()
    requests, rounds, warmup = (200, 2, 20) if args.quick else (args.requests, args.rounds, 100)

    has_bundle = (PROJECT_ROOT / "api" / "ai_execute.py").exists()
    started: list[Process] = []
    database_url = None
    try:
        fake, fake_url = start_fake_server()
        started.append(fake)
        bundle_url = server_env = None
        if has_bundle:
            import pg

            database_url = pg.fresh_database("gateway")
            server_env = bundle_env(fake_url, database_url)
            server, bundle_url = start_local_server(server_env)
            started.append(server)
        clients = start_clients(fake_url, bundle_url, server_env)
        started += clients.values()
        samples = run_rounds(clients, requests, rounds, warmup)
    finally:
        for process in reversed(started):
            process.stop()
    ledger = ledger_rows(database_url) if database_url else None
    commit = commit_latency(database_url) if database_url else None
    figures, markdown = render(samples, ledger, commit, requests)
    emit(args, "gateway", figures, markdown)


if __name__ == "__main__":
    main()
