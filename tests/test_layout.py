"""The house's shape: imports in lib/ flow one way, lib/ never imports api/, and doc links resolve."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lower ranks are imported by higher ones, never the reverse; equal ranks may not import each other.
RANK = {
    "config": 0, "errors": 0, "logs": 0, "tokens": 0, "deadline": 0, "shapes": 0,
    "db": 1,
    "web": 2, "providers": 2,  # the edge counts anonymous callers in Postgres (lib/web/ratelimit.py)
    "observe": 3,
    "gateway": 3, "ingest": 3,
    "retrieval": 4,
    "reindex": 5, "assistant": 5, "prompts": 5,
    "experiments": 6,
    "cli": 7,
}


def lib_imports(path: Path) -> set[str]:
    """Every `lib.<room>` a module imports, lazily or not."""
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "api":
                rooms.add("api")
            elif parts[0] == "lib":
                rooms.update(parts[1:2] or [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in ("lib", "api"):
                    rooms.add(parts[1] if parts[0] == "lib" and len(parts) > 1 else parts[0])
    return rooms


def room_of(path: Path) -> str:
    rel = path.relative_to(ROOT / "lib").parts
    return rel[0].removesuffix(".py")


def test_every_room_has_a_rank() -> None:
    rooms = {room_of(p) for p in (ROOT / "lib").rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT / "lib"}
    assert rooms <= set(RANK), f"rooms without a place in the import order: {rooms - set(RANK)}"


def test_imports_flow_one_way() -> None:
    wrong = []
    for path in sorted((ROOT / "lib").rglob("*.py")):
        if path.parent == ROOT / "lib" and path.name == "__init__.py":
            continue
        here = room_of(path)
        for room in lib_imports(path) - {here}:
            if room == "api" or RANK.get(room, 99) >= RANK[here]:
                wrong.append(f"{path.relative_to(ROOT)} imports lib.{room}")
    assert not wrong, "\n".join(wrong)


def test_readme_layout_names_every_room() -> None:
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    for room in RANK:
        assert re.search(rf"^\s+{room}(/|\.py)\s", layout, re.M), f"README's Layout does not name {room}"


def test_doc_links_resolve() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, "\n".join(broken)
