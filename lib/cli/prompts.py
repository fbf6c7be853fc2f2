"""`python -m lib.cli prompts push|list|label|diff`: stored prompts from the command line.

    prompts push FILE...            create versions from JSON or YAML files (see below)
    prompts list [NAME]             every prompt, or one prompt's versions, labels and label moves
    prompts label NAME VERSION LABEL
    prompts diff NAME A B           unified diff of two versions (numbers or labels, `latest` too)

A file holds one prompt or a list of them (or `{"prompts": [...]}`), each shaped like the body of
`POST /api/prompts`. JSON always works; YAML (`.yaml`, `.yml`) needs PyYAML, which is imported
only here and is not part of the deployed bundle. Pushing the same content again creates no new
version (only the labels are moved), so a folder of prompt files can be pushed on every deploy.
The API, by contrast, makes a new version for every POST.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from lib.cli import command


def read_prompt_file(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SystemExit(f"prompts: {path} is YAML, which needs PyYAML (pip install PyYAML); "
                             "or write the prompt as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SystemExit(f"prompts: {path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"prompts: {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        data = data["prompts"]
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise SystemExit(f"prompts: {path}: expected a prompt object or a list of them")
    return items


def version_lines(version: Any) -> list[str]:
    """A version as lines of text, for diffs: model and parameters, then the messages."""
    lines = [f"model: {version.model}", f"params: {json.dumps(dict(version.params), sort_keys=True)}"]
    if version.kind == "text":
        return [*lines, "", *(version.template or "").splitlines()]
    for role, content in version.messages or ():
        lines += ["", f"[{role}]", *content.splitlines()]
    return lines


def _selector(raw: str) -> dict[str, Any]:
    return {"version": int(raw)} if raw.isdigit() else {"label": raw}


async def _push(paths: list[Path], by: str) -> list[dict[str, Any]]:
    from pydantic import ValidationError

    from lib import db, errors
    from lib.prompts.request import CreatePrompt
    from lib.prompts.store import create_version, move_label, read_version
    from lib.prompts.templates import PromptVersion
    from lib.providers import resolve_model

    results = []
    async with db.connect() as conn:
        for path in paths:
            for item in read_prompt_file(path):
                try:
                    body = CreatePrompt.model_validate({**item, "action": "create"})
                    if body.model:
                        resolve_model(body.model, "model")
                except (ValidationError, errors.ApiError) as exc:
                    raise SystemExit(f"prompts: {path}: {exc}") from None
                latest = await read_version(conn, body.name)
                pushed = PromptVersion(
                    body.name, 0, "text" if body.template is not None else "chat", body.template,
                    tuple((m.role, m.content) for m in body.messages) if body.messages is not None else None,
                    body.model, body.params.model_dump(mode="json", exclude_none=True))
                if latest is not None and latest.same_content(pushed):
                    for label in body.labels:
                        await move_label(conn, body.name, label, latest.version, by)
                    results.append({"name": body.name, "version": latest.version, "created": False,
                                    "labels": body.labels, "file": str(path)})
                    continue
                version, labels = await create_version(conn, body, by)
                results.append({"name": body.name, "version": version.version, "created": True, "labels": labels,
                                "file": str(path)})
    return results


async def _list(name: str | None) -> Any:
    from lib import db
    from lib.prompts.store import list_prompts, prompt_history

    async with db.connect() as conn:
        if name is None:
            return await list_prompts(conn)
        history = await prompt_history(conn, name)
    if history is None:
        raise SystemExit(f"prompts: no prompt named {name!r}")
    return history


async def _label(name: str, version: int, label: str, by: str) -> dict[str, Any]:
    from pydantic import ValidationError

    from lib import db
    from lib.prompts.request import MoveLabel
    from lib.prompts.store import move_label

    try:
        MoveLabel(action="label", name=name, version=version, label=label)
    except ValidationError as exc:
        raise SystemExit(f"prompts: {exc}") from None
    async with db.connect() as conn:
        return await move_label(conn, name, label, version, by)


async def _diff(name: str, a: str, b: str) -> list[str]:
    from lib import db
    from lib.prompts.store import read_version

    async with db.connect() as conn:
        old, new = await read_version(conn, name, **_selector(a)), await read_version(conn, name, **_selector(b))
    for raw, found in ((a, old), (b, new)):
        if found is None:
            raise SystemExit(f"prompts: prompt {name!r} has no version or label {raw!r}")
    return list(difflib.unified_diff(version_lines(old), version_lines(new), lineterm="",
                                     fromfile=f"{name} {a} (version {old.version})",
                                     tofile=f"{name} {b} (version {new.version})"))


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    push = sub.add_parser("push", help="create versions from JSON or YAML files")
    push.add_argument("files", nargs="+", type=Path, metavar="FILE")
    push.add_argument("--by", default="cli", help="who to record as the author (default: cli)")
    listing = sub.add_parser("list", help="every prompt, or one prompt's versions and labels")
    listing.add_argument("name", nargs="?")
    label = sub.add_parser("label", help="point a label at a version (recorded)")
    label.add_argument("name")
    label.add_argument("version", type=int)
    label.add_argument("label")
    label.add_argument("--by", default="cli", help="who to record as having moved it (default: cli)")
    diff = sub.add_parser("diff", help="unified diff between two versions (numbers or labels)")
    diff.add_argument("name")
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", metavar="B")


@command("prompts", "stored prompts: push files, list, move a label, diff two versions", _configure)
def prompts(args: argparse.Namespace) -> int:
    from lib import db, errors

    async def run() -> Any:
        try:
            if args.action == "push":
                return await _push(args.files, args.by)
            if args.action == "list":
                return await _list(args.name)
            if args.action == "label":
                return await _label(args.name, args.version, args.label, args.by)
            return await _diff(args.name, args.a, args.b)
        finally:
            await db.close_pools()

    try:
        result = asyncio.run(run())
    except errors.ApiError as exc:
        print(json.dumps(exc.body("cli"), indent=2), file=sys.stderr)
        return 1
    if args.action == "diff":
        print("\n".join(result))
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0
