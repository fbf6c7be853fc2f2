"""Cold start of this checkout against another one (say, a worktree of `main`): each `api/` module's
import and the first requests that embed or store vectors, in fresh processes, interleaved.

A dependency change (pgvector, numpy) moves figures by a few milliseconds, less than this machine's
noise between two runs of `cold_start.py`, so both trees are measured in the same run: every round
runs each target once in one tree and once in the other, in alternating order, and the ratio of
each pair is taken. Each tree runs with its own `.venv`. Both serve from one database (this tree's
migrations; the trees must not differ in them), with the small license index `cold_start.py` builds.
Also timed, in fresh processes of this tree: `import numpy` and `import pgvector.psycopg`, the
imports a request pays for when it first embeds or stores vectors.

    .venv/bin/python bench/cold_start_compare.py --base ../other-checkout [--runs 10] [--json out.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cold_start import (  # noqa: E402
    IMPORT_CHILD,
    PEAK_RSS,
    RAG_NAMESPACE,
    SERVE_CHILD,
    child_env,
    prepare_database,
)
from envs import PROJECT_ROOT  # noqa: E402
from measure import arguments, emit, ms, run_process, summary, table  # noqa: E402

# A fresh text per process, so that every upload embeds and writes (an identical one is a no-op).
UNIQUE_SERVE_CHILD = SERVE_CHILD.replace(
    "status, body = asyncio.run(serve(module.app, {method!r}, {body!r}))",
    "_body = {body!r}\n"
    "_body[{field!r}] = _body[{field!r}] + ' ' + str(time.time_ns())\n"
    "status, body = asyncio.run(serve(module.app, {method!r}, _body))")
UPLOAD_TEXT = " ".join(f"Paragraph {i}: serverless functions keep Postgres connections in a pool, and "
                       "pgvector stores one embedding per chunk of every document." for i in range(60))
REQUESTS = [
    ("rag", "search only (answer: false; keywords alone on a hash-embedded namespace)", SERVE_CHILD, None,
     {"query": "What does the license permit?", "namespace": RAG_NAMESPACE, "answer": False, "top_k": 5}),
    ("rag", "search only, hybrid (embeds the query)", SERVE_CHILD, None,
     {"query": "What does the license permit?", "namespace": RAG_NAMESPACE, "answer": False, "top_k": 5,
      "mode": "hybrid"}),
    ("upload", "a 60-paragraph text", UNIQUE_SERVE_CHILD, "content",
     {"filename": "note.txt", "content": UPLOAD_TEXT, "namespace": "bench-cold-upload"}),
    ("embeddings", "one text, local/hash-384", UNIQUE_SERVE_CHILD, "input",
     {"input": "a short text to embed"}),
]
IMPORTS = {
    "import numpy": "import numpy",
    "import psycopg": "import psycopg",
    "import pgvector.psycopg (psycopg already imported)": "import psycopg\n_started = time.perf_counter()\n"
                                                         "import pgvector.psycopg",
    "import numpy, psycopg, pgvector.psycopg": "import numpy, psycopg, pgvector.psycopg",
}


def targets_for(root: Path) -> list[tuple[str, str]]:
    modules = sorted(p.stem for p in (root / "api").glob("*.py") if not p.name.startswith("_"))
    found = [(f"import api.{name}", IMPORT_CHILD.format(statement=f"import api.{name}", peak=PEAK_RSS))
             for name in modules]
    for name, label, child, field, body in REQUESTS:
        if name in modules:
            code = child.format(name=name, method="POST", body=body, field=field, peak=PEAK_RSS)
            found.append((f"api.{name}: import + POST {label}", code))
    return found


def run_one(root: Path, code: str, env: dict[str, str]) -> dict:
    result = run_process([str(root / ".venv" / "bin" / "python"), "-c", code], cwd=root, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{root.name}: {(result.stderr.strip().splitlines() or ['failed'])[-1]}")
    report = json.loads(result.stdout)
    if report.get("status", 200) >= 400:
        raise RuntimeError(f"{root.name}: HTTP {report['status']}: {report.get('body', '')[:200]}")
    report["wall_s"] = result.wall_s
    return report


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout, with its own .venv")
    parser.add_argument("--runs", type=int, default=10, help="measured rounds (default 10)")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    base, this = args.base.resolve(), PROJECT_ROOT
    database_url, _ = prepare_database(["rag"])
    env = child_env(database_url)
    env.pop("EMBEDDING_MODEL", None)
    ours = dict(targets_for(this))
    theirs = dict(targets_for(base))
    labels = [label for label in ours if label in theirs]
    samples: dict[str, dict[str, list[dict]]] = {label: {"base": [], "this": []} for label in labels}
    imports: dict[str, list[float]] = {label: [] for label in IMPORTS}
    for round_number in range(runs + 1):  # round 0 warms caches and writes bytecode
        for label in labels:
            order = [("base", base, theirs[label]), ("this", this, ours[label])]
            if round_number % 2:
                order.reverse()
            for side, root, code in order:
                report = run_one(root, code, env)
                if round_number:
                    samples[label][side].append(report)
        for label, statement in IMPORTS.items():
            report = run_one(this, IMPORT_CHILD.format(statement=statement, peak=PEAK_RSS), env)
            if round_number:
                imports[label].append(report["import_s"])

    rows, figures = [], {"runs": runs, "base": base.name, "this": this.name, "targets": {}, "imports": {}}
    for label in labels:
        pair = samples[label]
        key = "request_s" if "request_s" in pair["this"][0] else "import_s"
        ratio = statistics.median(t[key] / b[key] for b, t in zip(pair["base"], pair["this"], strict=True))
        wall_ratio = statistics.median(t["wall_s"] / b["wall_s"]
                                       for b, t in zip(pair["base"], pair["this"], strict=True))
        data = {side: {k: summary([r[k] for r in pair[side]]) for k in ("wall_s", "import_s", "request_s")
                       if k in pair[side][0]} for side in ("base", "this")}
        data.update(ratio=ratio, wall_ratio=wall_ratio)
        figures["targets"][label] = data
        rows.append([label, ms(data["base"]["import_s"]["p50"]), ms(data["this"]["import_s"]["p50"]),
                     ms(data["base"]["request_s"]["p50"]) if "request_s" in data["base"] else "",
                     ms(data["this"]["request_s"]["p50"]) if "request_s" in data["this"] else "",
                     f"{ratio:.2f}", ms(data["base"]["wall_s"]["p50"]), ms(data["this"]["wall_s"]["p50"]),
                     f"{wall_ratio:.2f}"])
    import_rows = []
    for label, values in imports.items():
        figures["imports"][label] = summary(values)
        import_rows.append([label, ms(statistics.median(values)), ms(min(values)), ms(max(values))])
    markdown = "\n".join([
        "## Cold start: this checkout against another",
        "",
        f"`{this.name}` against `{base.name}`, {runs} rounds after one warm-up; in each round every row "
        "runs once in each tree, in alternating order. Import and request are timed inside the child "
        "(p50 ms); wall is process start to exit; `this / base` is the median of the round-by-round "
        "ratios (of the request time for request rows, else of the import time).",
        "",
        table(["process", "import base", "import this", "request base", "request this", "this / base",
               "wall base", "wall this", "wall this / base"], rows),
        "",
        f"Fresh processes of `{this.name}`, {runs} each (ms):",
        "",
        table(["import", "median", "min", "max"], import_rows),
    ])
    emit(args, "cold_start_compare", figures, markdown)


if __name__ == "__main__":
    main()
