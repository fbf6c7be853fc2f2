"""Chunking throughput and chunk quality on a ~20 MB prose corpus: the project's chunker against
LangChain's RecursiveCharacterTextSplitter (1000 characters, 200 overlap), semantic-text-splitter
and chonkie at matching settings, each in its own environment.

Our chunker counts tokens, the others characters: its budget is set to 1000 characters' worth of
tokens at the corpus's own characters-per-token ratio (`lib.tokens`), and likewise the overlap.

    .venv/bin/python bench/chunking.py [--rounds 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import DEFAULT_MEGABYTES, corpus_paths, load_corpus  # noqa: E402
from envs import BENCH_DIR, PROJECT_ROOT, ensure_env  # noqa: E402
from measure import arguments, emit, run_process, table  # noqa: E402

SIZE_CHARS = 1000
OVERLAP_CHARS = 200
# (label, worker name, environment) — the environment "project" is the project's own venv
CHUNKERS = [
    ("this bundle: lib.ingest.chunking.chunk_text", "project", None),
    ("LangChain RecursiveCharacterTextSplitter", "langchain", "langchain"),
    ("semantic-text-splitter TextSplitter", "semantic-text-splitter", "chunkers"),
    ("chonkie SentenceChunker", "chonkie-sentence", "chunkers"),
    ("chonkie RecursiveChunker (no overlap option)", "chonkie-recursive", "chunkers"),
]


def chars_per_token(documents: list[str]) -> float:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from lib.tokens import count_tokens

    sample = "\n\n".join(documents)[:4 * 1024 * 1024]
    return len(sample) / count_tokens(sample)


def run_chunker(worker: str, env: str | None, corpus: Path, size: int, overlap: int, runs: int,
                limit_mb: float) -> dict:
    python = PROJECT_ROOT / ".venv" / "bin" / "python" if env is None else ensure_env(env)
    argv = [str(python), str(BENCH_DIR / "chunking_worker.py"), worker, str(corpus), "--size", str(size),
            "--overlap", str(overlap), "--chars", str(SIZE_CHARS), "--runs", str(runs)]
    if limit_mb:
        argv += ["--limit-mb", str(limit_mb)]
    result = run_process(argv, cwd=PROJECT_ROOT, timeout_s=1800)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout)


def render(results: dict[str, dict], meta: dict, ratio: float, token_size: int, token_overlap: int,
           limit_mb: float) -> tuple[dict, str]:
    baseline = results.get("langchain", {})

    def versus_baseline(data: dict) -> str:
        """The median over rounds of this chunker's speed over LangChain's in the same round."""
        theirs = baseline.get("rounds_mb_per_s", [])
        ours = data.get("rounds_mb_per_s", [])
        if not theirs or len(theirs) != len(ours):
            return "n/a"
        return f"{statistics.median(a / b for a, b in zip(ours, theirs, strict=True)):.2f}x"

    rows = []
    for label, worker, _ in CHUNKERS:
        data = results[worker]
        if "error" in data:
            rows.append([label, "failed: " + data["error"].replace("|", "/")] + [""] * 9)
            continue
        speed = data["mb_per_s"]
        versus = versus_baseline(data)
        sizes, bounds = data["sizes"], data["boundaries"]
        rows.append([label, f"{speed:.1f}", versus, sizes["chunks"], f"{sizes['mean']:.0f}",
                     f"{sizes['p5']} / {sizes['p50']} / {sizes['p95']} / {sizes['max']}",
                     f"{sizes['over_size']:.1%}", f"{bounds['ends_sentence']:.1%}",
                     f"{bounds['ends_sentence_or_line']:.1%}", f"{bounds['cuts_word']:.2%}"])
    measured = next((r for r in results.values() if "error" not in r), {})
    corpus_mb = measured.get("megabytes", meta["bytes"] / (1024 * 1024))
    documents = measured.get("documents", meta["documents"])
    figures = {"corpus": {k: v for k, v in meta.items() if k != "bytes_per_source"},
               "chars_per_token": ratio, "project_size_tokens": token_size,
               "project_overlap_tokens": token_overlap, "chunkers": results}
    sources = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in
                        sorted(meta["bytes_per_source"].items(), key=lambda item: -item[1])[:6])
    markdown = "\n".join([
        "## Chunking",
        "",
        f"Corpus: {corpus_mb:.1f} MB of prose in {documents} documents built from text on the "
        f"machine (`bench/corpus.py`; largest sources: {sources}; SHA-256 `{meta['sha256'][:16]}…`). "
        "Each document is chunked separately; throughput is the median over the runs of chunking "
        "the whole corpus, after a warm-up, in rounds that run every chunker in turn; *vs LangChain* "
        "is the median of the round-by-round ratios. Settings: {SIZE_CHARS} characters with {OVERLAP_CHARS} "
        f"of overlap; our chunker counts tokens, so it gets {token_size} tokens with {token_overlap} "
        f"of overlap ({ratio:.2f} characters per token on this corpus by `lib.tokens`), which is why "
        "some of its chunks run past 1000 characters.",
        "",
        "A chunk *ends a sentence* when it ends with . ! ? (and closing quotes or brackets) or at the "
        "end of its document; *or line* also counts a chunk ending at a line break (headings, list "
        "items, code); *cuts a word* counts chunks whose last and next characters are both letters "
        "or digits.",
        "",
        table(["chunker", "MB/s", "vs LangChain", "chunks", "mean chars", "p5 / p50 / p95 / max chars",
               "> 1000 chars", "ends a sentence", "ends a sentence or line", "cuts a word"], rows),
    ])
    return figures, markdown


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    # three rounds: on a shared machine one slow round moves the median of two
    parser.add_argument("--rounds", type=int, default=3, help="passes over all chunkers (alternated)")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per chunker per round")
    parser.add_argument("--megabytes", type=int, default=DEFAULT_MEGABYTES)
    args = parser.parse_args()
    rounds, runs, limit_mb = (1, 1, 4.0) if args.quick else (args.rounds, args.runs, 0.0)

    documents, meta = load_corpus(args.megabytes)
    corpus_file, _ = corpus_paths(args.megabytes)
    ratio = chars_per_token(documents)
    token_size, token_overlap = round(SIZE_CHARS / ratio), round(OVERLAP_CHARS / ratio)
    results: dict[str, dict] = {}
    for _ in range(rounds):
        for _label, worker, env in CHUNKERS:
            size, overlap = (token_size, token_overlap) if worker == "project" else (SIZE_CHARS, OVERLAP_CHARS)
            data = run_chunker(worker, env, corpus_file, size, overlap, runs, limit_mb)
            previous = results.get(worker)
            if "error" not in data:
                data["rounds_mb_per_s"] = [data["mb_per_s"]]
            if previous and "error" not in previous and "error" not in data:
                data["runs_s"] = previous["runs_s"] + data["runs_s"]
                data["rounds_mb_per_s"] = previous["rounds_mb_per_s"] + data["rounds_mb_per_s"]
                data["seconds_p50"] = statistics.median(data["runs_s"])
                data["mb_per_s"] = data["megabytes"] / data["seconds_p50"]
            results[worker] = data
    figures, markdown = render(results, meta, ratio, token_size, token_overlap, limit_mb)
    emit(args, "chunking", figures, markdown)


if __name__ == "__main__":
    main()
