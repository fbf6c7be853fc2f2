"""The dashboard page and its static files, served by /api/dashboard from lib/observe/dashboard/.

The page holds no figures: it asks /api/metrics for them with the key typed into it, so the page
itself can be served to anyone while every number stays behind `require_admin`. A strict content
security policy keeps it to its own scripts and styles and to requests to this origin.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}

PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
ASSET_HEADERS = {"x-content-type-options": "nosniff", "cache-control": "public, max-age=3600"}


@cache
def read(name: str) -> bytes:
    """The bytes of the page (`index.html`) or of one of `ASSETS`; other names are not served."""
    if name != "index.html" and name not in ASSETS:
        raise KeyError(name)
    return (DASHBOARD_DIR / name).read_bytes()
