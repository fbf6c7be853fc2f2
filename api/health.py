"""GET /api/health: is the function up, can it reach Postgres with pgvector, and who may call?"""

from lib.db.health import check_health
from lib.web import Endpoint, Request, json_response
from lib.web.auth import auth_report

app = Endpoint("health", auth=False)


@app.get(response={200: "lib.db.response:HealthReport", 503: "lib.db.response:HealthReport"})
async def health(request: Request, _query: object) -> object:
    """Is the function up, can it reach Postgres with pgvector, and how are callers identified?
    503, same shape, when the database cannot be reached."""
    report = {**await check_health(request.settings), **auth_report(request.settings)}
    return json_response(report, 200 if report["status"] == "ok" else 503)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
