"""`python -m lib.cli ingest PATH... --namespace NS`: bulk ingest files and folders from disk.

Folders are walked in name order (hidden folders, node_modules and virtualenvs skipped); files
the bundle cannot read are skipped unless named directly. Each file's source is its path relative
to the current directory, so running the same command again is a no-op for unchanged files and
replaces changed ones. Progress goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lib.cli import command

_SKIP_DIRS = {"node_modules", "__pycache__", ".git", ".venv", "venv", ".data", "dist", "build"}


@dataclass
class Summary:
    documents: int = 0
    indexed: int = 0
    replaced: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    chunks: int = 0
    tokens: int = 0
    embedding_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    seconds: float = 0.0
    errors: list[dict[str, str]] = field(default_factory=list)


def _matches(path: str, patterns: list[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


def find_files(paths: list[str], include: list[str], exclude: list[str]) -> tuple[list[Path], int]:
    """The files to ingest, in a stable order, and how many were skipped as unreadable types."""
    from lib import errors
    from lib.ingest.documents import detect_media_type

    found: list[Path] = []
    skipped = 0
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            found.append(root)
            continue
        if not root.is_dir():
            raise SystemExit(f"ingest: {raw}: no such file or folder")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
            for name in sorted(files):
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                if name.startswith(".") or (include and not _matches(relative, include)):
                    continue
                if exclude and _matches(relative, exclude):
                    continue
                try:
                    detect_media_type(name)
                except errors.UnsupportedMediaType:
                    skipped += 1
                    continue
                found.append(path)
    return found, skipped


def source_name(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


class ProgressBar:
    """One line redrawn in place on a terminal; one line per file otherwise (CI logs)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr  # the stderr of now, not of when this module was imported
        self.tty = self.stream.isatty()

    def update(self, name: str, status: str, chunks: int) -> None:
        self.done += 1
        if self.tty:
            width = 30
            filled = int(width * self.done / max(1, self.total))
            line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {status:<9} {name[-50:]}"
            self.stream.write(line.ljust(110)[:110])
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {status} {name} ({chunks} chunks)\n")
        self.stream.flush()


async def ingest_paths(files: list[Path], args: argparse.Namespace, summary: Summary,
                       bar: ProgressBar | None) -> None:
    from lib import db, errors
    from lib.config import get_settings
    from lib.ingest.store import IngestOptions, ingest_document

    settings = get_settings()
    options = IngestOptions(namespace=args.namespace, metadata=json.loads(args.metadata) if args.metadata else {},
                            embedding_model=args.model, chunk_size_tokens=args.chunk_size,
                            chunk_overlap_tokens=args.overlap)
    limit = asyncio.Semaphore(max(1, args.jobs))

    async def one(path: Path) -> None:
        name = source_name(path)
        async with limit:
            try:
                result = await ingest_document(path.read_bytes(), path.name, replace(options, source=name),
                                               settings=settings)
            except (errors.ApiError, OSError) as exc:
                summary.failed += 1
                message = exc.message if isinstance(exc, errors.ApiError) else str(exc)
                summary.errors.append({"source": name, "error": message})
                if bar:
                    bar.update(name, "failed", 0)
                return
        summary.documents += 1
        setattr(summary, result.status, getattr(summary, result.status) + 1)
        summary.chunks += result.chunks
        summary.tokens += result.tokens
        summary.embedding_tokens += result.embedding_tokens
        if result.cost_usd is None:
            summary.cost_known = False
        else:
            summary.cost_usd += result.cost_usd
        if bar:
            bar.update(name, result.status, result.chunks)

    try:
        await asyncio.gather(*(one(p) for p in files))
    finally:
        await db.close_pools()


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of at least 1")
    return int(raw)


def _not_negative(raw: str) -> int:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number")
    return int(raw)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    parser.add_argument("--namespace", required=True, help="the namespace to put the documents in")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="only files matching (e.g. '*.md'); repeatable")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="skip files matching (e.g. 'drafts/*'); repeatable")
    parser.add_argument("--model", default=None, help="embedding model (default: EMBEDDING_MODEL or local/hash-384)")
    parser.add_argument("--chunk-size", type=_positive, default=None, help="tokens per chunk")
    parser.add_argument("--overlap", type=_not_negative, default=None, help="tokens of overlap between chunks")
    parser.add_argument("--metadata", default=None, help="JSON object stored with every document")
    parser.add_argument("--jobs", type=int, default=2, help="documents ingested at once (default 2)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@command("ingest", "ingest files and folders into a namespace", _configure)
def ingest(args: argparse.Namespace) -> int:
    if args.metadata:
        try:
            if not isinstance(json.loads(args.metadata), dict):
                raise ValueError
        except ValueError:
            print("ingest: --metadata must be a JSON object", file=sys.stderr)
            return 2
    started = time.perf_counter()
    files, skipped = find_files(args.paths, args.include, args.exclude)
    summary = Summary(skipped=skipped)
    bar = None if args.quiet or not files else ProgressBar(len(files))
    asyncio.run(ingest_paths(files, args, summary, bar))
    summary.seconds = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(vars(summary), indent=2))
    else:
        cost = f"${summary.cost_usd:.6f}" + ("" if summary.cost_known else " (some prices unknown)")
        print(f"documents: {summary.documents} (indexed {summary.indexed}, replaced {summary.replaced}, "
              f"unchanged {summary.unchanged}), failed: {summary.failed}, skipped: {summary.skipped}")
        print(f"chunks: {summary.chunks}  tokens: {summary.tokens}  embedding tokens: {summary.embedding_tokens}"
              f"  cost: {cost}  seconds: {summary.seconds}")
        for error in summary.errors:
            print(f"failed: {error['source']}: {error['error']}", file=sys.stderr)
    return 1 if summary.failed else 0
