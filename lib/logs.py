"""Structured logs: one JSON object per line on stderr, with secrets scrubbed.

We write lines ourselves instead of configuring `logging`: it is one function, it costs no import
time on a cold start, and Vercel's log drain reads stderr lines as they are.
"""

from __future__ import annotations

import json
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

# Things that look like credentials: provider keys, bearer tokens, passwords in URLs.
_SECRET_PATTERNS = [
    re.compile(r"(sk|pk|rk|gsk|xai|sk-ant|sk-or)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\b(gsk|hf|r8|pplx|csk|fw|nvapi)_[A-Za-z0-9_\-]{8,}"),  # Groq, Hugging Face, Replicate, ...
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)(bearer\s+)[^\s,;\"']+"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s,;\"']+"),
    re.compile(r"(?i)(://[^:/\s]+:)[^@/\s]+(@)"),
]


# Secrets known by value: the keys this process was configured with, and a caller's own provider
# keys for the request being served. They are redacted by exact match, whatever their format.
_known_secrets: set[str] = set()
_request_secrets: ContextVar[tuple[str, ...]] = ContextVar("request_secrets", default=())
_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words


def remember_secret(value: str | None) -> None:
    """Redact this value wherever it appears in any later log line of this process."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _known_secrets.add(value)


def redact_for_this_request(*values: str) -> None:
    """Redact these values (a caller's own keys) in log lines written while serving this request."""
    kept = tuple(v for v in values if v and len(v) >= _MIN_SECRET_LENGTH)
    if kept:
        _request_secrets.set(_request_secrets.get() + kept)


def scrub(text: str) -> str:
    """Replace known secrets, and anything that looks like a secret, with `[redacted]`."""
    for secret in (*_request_secrets.get(), *_known_secrets):
        if secret in text:
            text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]" + m.group(2), text)
        elif pattern.groups == 1 and pattern.pattern.startswith("(?i)"):
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


_threshold = 20


def set_level(level: str) -> None:
    global _threshold
    _threshold = _LEVELS.get(level.lower(), 20)


def log(level: str, event: str, **fields: Any) -> None:
    """Write one JSON line: `{"ts", "level", "event", ...fields}`. Strings are scrubbed."""
    if _LEVELS.get(level, 20) < _threshold:
        return
    record: dict[str, Any] = {"ts": round(time.time(), 3), "level": level, "event": event}
    for key, value in fields.items():
        record[key] = scrub(value) if isinstance(value, str) else value
    try:
        line = json.dumps(record, default=str, ensure_ascii=False)
        line.encode("utf-8")  # a lone surrogate cannot be written to stderr: escape instead
    except UnicodeEncodeError:
        line = json.dumps(record, default=str)
    except (TypeError, ValueError):
        line = json.dumps({"ts": record["ts"], "level": level, "event": event})
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stderr must not turn a reply into a 500
        pass
