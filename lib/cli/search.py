"""`python -m lib.cli search "question" --namespace NS`, `python -m lib.cli reindex` and
`python -m lib.cli vector-index`: retrieval, the reindex cron and the HNSW index builds too long
for it, from the command line (the same code the functions run)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from lib.cli import command


def _configure_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help="the question or keywords")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--mode", choices=["hybrid", "keyword", "vector"], default="hybrid")
    parser.add_argument("--fusion", choices=["weighted", "rrf"], default="weighted")
    parser.add_argument("--filter", type=json.loads, default=None, help='metadata filter as JSON, e.g. \'{"kind": "faq"}\'')
    parser.add_argument("--answer", action="store_true", help="also answer (extractive unless a model is set)")
    parser.add_argument("--model", default=None)


@command("search", "search a namespace (and optionally answer with citations)", _configure_search)
def _search(args: Any) -> int:
    from lib import db, errors
    from lib.config import get_settings
    from lib.retrieval.answers import Question, answer, prepare, run_search
    from lib.retrieval.search import SearchOptions

    settings = get_settings()
    options = SearchOptions(namespace=args.namespace, top_k=args.top_k, mode=args.mode, fusion=args.fusion,
                            filter=args.filter)

    async def main() -> dict[str, Any]:
        try:
            if not args.answer:
                hits = await run_search(args.query, options, settings)
                return {"results": [hit.to_json() for hit in hits]}
            prepared = await prepare(Question(args.query, options, model=args.model, keep_conversation=False,
                                              caller="cli"), settings)
            finished = await answer(prepared, settings)
            return {"answer": finished.answer, "citations": finished.citations, "model": finished.model,
                    "usage": finished.usage, "cost_usd": finished.cost_usd}
        finally:
            await db.close_pools()

    try:
        print(json.dumps(asyncio.run(main()), indent=2, ensure_ascii=False))
    except errors.ApiError as exc:
        print(json.dumps(exc.body("cli"), indent=2))
        return 1
    return 0


def _configure_reindex(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=None, help="jobs claimed at a time (REINDEX_BATCH)")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds (REINDEX_TIME_BUDGET_S)")
    parser.add_argument("--until-done", action="store_true", help="repeat until the queue is empty")


@command("reindex", "run the reindex cron once (or until the queue is empty)", _configure_reindex)
def _reindex(args: Any) -> int:
    from lib import db
    from lib.config import get_settings
    from lib.reindex import run_reindex

    settings = get_settings()

    async def main() -> list[dict[str, Any]]:
        reports = []
        try:
            while True:
                report = (await run_reindex(settings, batch=args.batch, time_budget_s=args.time_budget)).to_json()
                report.pop("jobs")
                reports.append(report)
                if not args.until_done or report["remaining"] == 0 or report["processed"] == 0:
                    return reports
        finally:
            await db.close_pools()

    reports = asyncio.run(main())
    print(json.dumps(reports[-1] if len(reports) == 1 else reports, indent=2))
    return 0


def _configure_vector_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=[], help="only this embedding model (repeatable)")
    parser.add_argument("--force", action="store_true", help="rebuild even an index that matches its settings")


@command("vector-index", "build or rebuild the models' HNSW indexes now, however large, the old ones serving meanwhile",
         _configure_vector_index)
def _vector_index(args: Any) -> int:
    from lib.config import get_settings
    from lib.ingest.vector_index import maintain_vector_indexes

    changes = asyncio.run(maintain_vector_indexes(get_settings(), models=args.model or None, force=args.force))
    print(json.dumps([change.to_json() for change in changes], indent=2))
    return 1 if any(change.action in ("failed", "timed_out") for change in changes) else 0
