"""GET /api/health: is the function up, and can it reach Postgres with pgvector?"""

from lib.db.health import check_health
from lib.web import Endpoint, Request, json_response

app = Endpoint("health", auth=False)


@app.get(response={200: "lib.db.response:HealthReport", 503: "lib.db.response:HealthReport"})
async def health(request: Request, _query: object) -> object:
    """Is the function up, and can it reach Postgres with pgvector? 503, same shape, when it cannot."""
    report = await check_health(request.settings)
    return json_response(report, 200 if report["status"] == "ok" else 503)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
