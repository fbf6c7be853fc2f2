"""An experiment's report: per variant, exposures and requests, each metric's mean and 95% interval,
and against control the difference with its interval, p-value and always-valid p-value; plus a
sample-ratio-mismatch check and a verdict on the primary metric.

The unit of analysis is the unit of assignment: a user who asked ten times is one observation,
not ten, since it is units that were randomized (with `request` units the two are the same). Per
unit, SQL reduces each request to its outcomes, joining the usage ledger and feedback by request id:

    feedback_score          mean of the unit's normalized feedback (0..1) over its rated requests
    positive_feedback_rate  rated requests with feedback above 0.5 (thumbs up, 4 or 5 of 5), of rated
    latency                 mean per request of the summed latency of its chat calls, over answered
                            requests (milliseconds, retries included, backoff waits not)
    cost                    mean per request of its summed cost over requests that reached a provider
                            (USD; calls with no known price count as 0)
    error_rate              requests with chat calls but no answer (every attempt failed), of those
                            that reached a provider

Means are compared with Welch's t-test; rates with the two-proportion z-test when every unit has
one trial, else a z-test on the delta-method variance (lib/experiments/stats.py). A variant is
called better or worse only on the always-valid p-value, so the report may be read every day.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lib.experiments import stats

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from lib.experiments.store import Experiment

ALPHA = 0.05
MEANS = ("feedback_score", "latency", "cost")
RATES = ("positive_feedback_rate", "error_rate")
HIGHER_IS_BETTER = {"feedback_score": True, "positive_feedback_rate": True, "latency": False, "cost": False,
                    "error_rate": False}

# Sufficient statistics per variant, over units: count, sum and sum of squares of each mean
# metric; for each rate, per unit successes y and trials n summed as y, n, y^2, n^2, y*n.
OUTCOMES_SQL = """
WITH requests AS (
    SELECT r.variant, r.unit, f.value AS feedback, o.chat_calls, o.answered, o.latency_ms, o.cost_usd
    FROM experiment_requests r
    LEFT JOIN feedback f ON f.caller = r.caller AND f.request_id = r.request_id
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE l.kind = 'chat') AS chat_calls,
               coalesce(bool_or(l.kind = 'chat' AND l.status IN ('ok', 'cached')), false) AS answered,
               sum(l.latency_ms) FILTER (WHERE l.kind = 'chat') AS latency_ms,
               coalesce(sum(l.cost_usd), 0)::double precision AS cost_usd
        FROM usage_ledger l
        WHERE l.request_id = r.request_id AND l.caller = r.caller
    ) o ON true
    WHERE r.experiment = %(experiment)s
),
units AS (
    SELECT variant, unit, count(*) AS requests,
           avg(feedback) AS feedback_score,
           count(feedback) AS rated,
           count(*) FILTER (WHERE feedback > 0.5) AS positive,
           avg(latency_ms) FILTER (WHERE answered) AS latency,
           avg(cost_usd) FILTER (WHERE chat_calls > 0) AS cost,
           count(*) FILTER (WHERE chat_calls > 0) AS reached,
           count(*) FILTER (WHERE chat_calls > 0 AND NOT answered) AS errors
    FROM requests GROUP BY variant, unit
)
SELECT variant, count(*) AS units, sum(requests) AS requests,
       count(feedback_score), sum(feedback_score), sum(feedback_score ^ 2),
       count(latency), sum(latency), sum(latency ^ 2),
       count(cost), sum(cost), sum(cost ^ 2),
       count(*) FILTER (WHERE rated > 0), sum(positive), sum(rated), sum(positive ^ 2), sum(rated ^ 2),
       sum(positive * rated),
       count(*) FILTER (WHERE reached > 0), sum(errors), sum(reached), sum(errors ^ 2), sum(reached ^ 2),
       sum(errors * reached)
FROM units GROUP BY variant
"""


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _pair(interval: tuple[float, float] | None) -> list[float | None] | None:
    return [_finite(interval[0]), _finite(interval[1])] if interval else None


def samples_from_row(row: tuple) -> tuple[int, int, dict[str, Any]]:
    """(units, requests, {metric: Summary | Rate}) from one row of OUTCOMES_SQL."""
    units, requests = int(row[1]), int(row[2])
    values = [_f(v) for v in row[3:]]
    samples: dict[str, Any] = {}
    for i, metric in enumerate(MEANS):
        n, total, total_sq = values[3 * i: 3 * i + 3]
        samples[metric] = stats.Summary.from_sums(int(n), total, total_sq)
    for i, metric in enumerate(RATES):
        k, y, n, y2, n2, yn = values[9 + 6 * i: 9 + 6 * i + 6]
        samples[metric] = stats.Rate(int(k), y, n, y2, n2, yn)
    return units, requests, samples


def describe(sample: Any) -> dict[str, Any]:
    if isinstance(sample, stats.Rate):
        return {"units": sample.units, "successes": sample.successes, "trials": sample.trials,
                "rate": _finite(sample.rate) if sample.trials else None, "ci95": _pair(stats.rate_interval(sample))}
    return {"units": sample.n, "mean": _finite(sample.mean) if sample.n else None,
            "ci95": _pair(stats.mean_interval(sample))}


def compare(metric: str, control: Any, other: Any) -> dict[str, Any] | None:
    result = stats.compare_rates(control, other) if metric in RATES else stats.welch(control, other)
    if result is None:
        return None
    sequential = result.sequential_p_value
    verdict = "inconclusive"
    if sequential is not None and sequential < ALPHA and result.difference != 0:
        verdict = "better" if (result.difference > 0) == HIGHER_IS_BETTER[metric] else "worse"
    baseline = control.rate if metric in RATES else control.mean
    return {"difference": _finite(result.difference),
            "relative": _finite(result.difference / baseline) if baseline else None,
            "ci95": _pair(result.ci95), "p_value": _finite(result.p_value),
            "sequential_p_value": _finite(sequential), "test": result.test, "verdict": verdict}


async def experiment_report(conn: AsyncConnection, experiment: Experiment) -> dict[str, Any]:
    cur = await conn.execute(OUTCOMES_SQL, {"experiment": experiment.name})
    measured = {row[0]: samples_from_row(row) for row in await cur.fetchall()}
    cur = await conn.execute("SELECT variant, count(*) FROM experiment_exposures WHERE experiment = %s"
                             " GROUP BY variant", (experiment.name,))
    exposures = dict(await cur.fetchall())
    empty = (0, 0, {m: stats.Summary(0, 0.0, 0.0) for m in MEANS} | {m: stats.Rate.of([]) for m in RATES})
    control = measured.get(experiment.control, empty)[2]
    variants = []
    for variant in experiment.variants:
        units, requests, samples = measured.get(variant.name, empty)
        metrics = {}
        for metric, sample in samples.items():
            metrics[metric] = describe(sample)
            if variant.name != experiment.control:
                metrics[metric]["vs_control"] = compare(metric, control[metric], sample)
        variants.append({**variant.as_json(), "control": variant.name == experiment.control,
                         "exposures": int(exposures.get(variant.name, 0)), "units": units, "requests": requests,
                         "metrics": metrics})
    srm = stats.srm_check([v["exposures"] for v in variants], [v.weight for v in experiment.variants])
    srm = {k: (_finite(v) if isinstance(v, float) else v) for k, v in srm.items()}
    if srm["flagged"]:
        srm["warning"] = ("sample ratio mismatch: exposures do not match the weights (p < 0.001), so "
                          "assignment or exposure logging is broken and the results are not trustworthy")
    return {**experiment.as_json(), "alpha": ALPHA, "variants": variants, "srm": srm,
            "decision": decide(experiment, variants, srm),
            "method": {"unit_of_analysis": experiment.unit, "means": "welch_t",
                       "rates": "two_proportion_z (one trial per unit), else delta_method_z",
                       "sequential": f"mSPRT, normal mixture with sd {stats.MIXING_SD} x the pooled per-unit sd",
                       "significant_when": f"sequential_p_value < {ALPHA}"}}


def decide(experiment: Experiment, variants: list[dict[str, Any]], srm: dict[str, Any]) -> dict[str, Any]:
    """The primary metric's verdict: the variants that beat control on the always-valid p-value,
    the best of them, and a sentence for the owner."""
    metric = experiment.metric
    better = [(v["name"], v["metrics"][metric]["vs_control"]) for v in variants
              if not v["control"] and (v["metrics"][metric].get("vs_control") or {}).get("verdict") == "better"]
    worse = [v["name"] for v in variants
             if not v["control"] and (v["metrics"][metric].get("vs_control") or {}).get("verdict") == "worse"]
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    best = max(better, key=lambda pair: sign * (pair[1]["difference"] or 0))[0] if better else None
    if srm["flagged"]:
        summary = "sample ratio mismatch: fix assignment or exposure logging before reading these results"
    elif best is not None:
        found = dict(better)[best]
        summary = (f"{best} beats {experiment.control} on {metric} ({found['difference']:+.4g}, "
                   f"always-valid p = {found['sequential_p_value']:.2g})")
    elif worse:
        summary = f"{', '.join(worse)} did worse than {experiment.control} on {metric}; no variant did better"
    else:
        summary = f"no significant difference on {metric} yet"
    return {"metric": metric, "higher_is_better": HIGHER_IS_BETTER[metric], "significant": best is not None,
            "best": best, "better": [name for name, _ in better], "worse": worse, "trustworthy": not srm["flagged"],
            "summary": summary}
