"""What the browser tests need (Debian's chromium, Node.js and the npm packages), and the reason
they are skipped, visibly, when something is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node")
NPM = shutil.which("npm")


def browser_missing() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    if CHROMIUM is None:
        return "chromium is not installed (apt-get install chromium)"
    if NODE is None:
        return "Node.js is not installed"
    if not (NODE_DIR / "node_modules" / "puppeteer-core").is_dir():
        return "puppeteer-core is not installed (npm install in tests/node, as `make node-deps` does)"
    return None


def node_env() -> dict[str, str]:
    return {**os.environ, "CHROMIUM": CHROMIUM or ""}
