"""Experiments: split traffic between prompt versions or models, collect feedback, and say which wins.

    assign.py    the variant of a unit: sha256 of (experiment, unit) into the weights' ranges
    store.py     definitions and their lifecycle (draft, running, paused, stopped), exposures and
                 the requests each variant served
    serving.py   a request's template and variant applied before ai_execute or rag runs it
    feedback.py  one score per request and caller, tied to what answered
    report.py    per-variant outcomes (usage ledger + feedback, per unit) and their comparison
    stats.py     Welch's t, two-proportion z, intervals, the mixture SPRT, the SRM check
    request.py   the bodies and queries of /api/experiments and /api/feedback

Built on lib/prompts: variants pin prompt versions, and picking a winner moves a prompt label.
"""
