"""Prompt management: named prompts with immutable numbered versions and movable labels.

A version is a text template or a list of chat messages with `{{variable}}` placeholders, an
optional model and parameters (temperature, max_tokens, response_format, tools), and the variables
its placeholders require. Labels (`production`, `staging`, any name) point at one version each and
every move is recorded; `latest` always means the newest version.

    templates.py   placeholders, variables and rendering (pure functions)
    store.py       the SQL: create a version, move a label, list, read
    resolve.py     name + label|version -> PromptVersion, cached per process for PROMPT_CACHE_TTL_S
    apply.py       a rendered version merged into an ai_execute request, or written into a rag answer
    request.py     the bodies and query of /api/prompts
    http.py        the function's work: create, label, render, read
    access.py      who may write (require_admin)

Experiments (lib/experiments) build on this package; nothing here imports them.
"""
