"""GET /api/reindex: the cron that re-ingests changed sources, migrates embedding models, removes
orphans, refreshes statistics and rebuilds the HNSW indexes of models whose size class or storage
changed (small ones; larger ones are reported for `python -m lib.cli vector-index`), a bounded batch
per call. Vercel cron calls it with `Authorization: Bearer $CRON_SECRET`; an administrator may run
it by hand (a key or token whose role is admin by name).
"""

from __future__ import annotations

from typing import Any

from lib.web import Endpoint, Request, check_cron_or_admin

app = Endpoint("reindex", auth=False)  # the cron secret or a named admin, checked in the handler


@app.get(response="lib.reindex.response:ReindexReport", errors=(401, 504))
async def reindex(request: Request, _query: object) -> Any:
    """One bounded run of the reindex queue; Vercel cron sends `Authorization: Bearer $CRON_SECRET`."""
    from lib.reindex import run_reindex

    await check_cron_or_admin(request)
    report = await run_reindex(request.settings, worker=request.request_id[:32])
    return report.to_json()


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
