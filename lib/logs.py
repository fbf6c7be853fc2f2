"""Structured logs: one JSON object per line on stderr, with secrets scrubbed.

We write lines ourselves instead of configuring `logging`: it is one function, it costs no import
time on a cold start, and Vercel's log drain reads stderr lines as they are.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

# Things that look like credentials: provider keys, bearer tokens, passwords in URLs.
_SECRET_PATTERNS = [
    re.compile(r"(sk|pk|rk|gsk|xai|sk-ant|sk-or)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)(bearer\s+)[^\s,;\"']+"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s,;\"']+"),
    re.compile(r"(?i)(://[^:/\s]+:)[^@/\s]+(@)"),
]


def scrub(text: str) -> str:
    """Replace anything that looks like a secret with `[redacted]`."""
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
