"""/api/experiments: split traffic between prompt versions or models, and report which one wins.

POST, chosen by `action` (admin):
  create (default)   {name, variants: [{name, weight, prompt?: {name, version}, model?, params?}],
                      unit: user|conversation|request, metric, control?, start?} -> the experiment
  start | pause | stop  {name}
  winner             {name, variant, label?} -> stopped; the winner's prompt version gets `label`
GET (admin): every experiment; ?name= its report (per variant metrics, intervals, p-values, SRM).
ai_execute and rag take `"experiment": "name"`; feedback arrives through /api/feedback.
"""

from __future__ import annotations

from typing import Any

from lib.experiments.request import ExperimentBody, ExperimentQuery
from lib.web import Endpoint, Request

app = Endpoint("experiments")


@app.post(ExperimentBody, role="admin", errors=(404, 409), response={
    201: "lib.experiments.response:ExperimentDefinition",
    200: "lib.experiments.response:ExperimentDefinition | lib.experiments.response:PickedWinner"})
async def post(request: Request, body: Any) -> Any:
    from lib.experiments.http import change_experiment

    return await change_experiment(request, body)


@app.get(ExperimentQuery, role="admin", errors=(404,),
         response="lib.experiments.response:ExperimentList | lib.experiments.response:ExperimentReport")
async def get(request: Request, query: ExperimentQuery) -> dict:
    from lib.experiments.http import read_experiments

    return await read_experiments(request, query)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
