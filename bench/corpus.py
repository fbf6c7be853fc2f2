"""A prose corpus of about 20 MB built from text already on the machine, for the chunking benchmark.

Sources, in this order, until the size is reached: the docstrings of the Python standard
library, the Python language reference topics (`pydoc_data`), the license texts in
/usr/share/common-licenses, the manuals and READMEs under /usr/share/doc (gzipped ones unpacked,
HTML reduced to its text), Vim's help files, then copyright files and changelogs. Paragraphs already seen are
dropped, so the many copies of one license count once, and so are documents that do not read
as prose (tables, glyph lists). Built once into `bench/.data/` and
reused; its SHA-256 goes into the results so two runs can tell whether they chunked the same text.

    .venv/bin/python bench/corpus.py [--megabytes 20]     # build it and print what is in it
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import re
import sys
import sysconfig
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import DATA_DIR  # noqa: E402

DOCUMENT_SEPARATOR = "\f\n"  # a form feed line between documents: never inside the sources' prose
DEFAULT_MEGABYTES = 20
# Prose first (manuals, READMEs, HTML docs), then legal text, then changelogs, which read least
# like the documents users upload.
_PROSE_NAMES = re.compile(r"(\.(txt|md|rst|html?)|^README[^/]*)(\.gz)?$", re.I)
_LEGAL_NAMES = re.compile(r"^copyright$")
_CHANGELOG_NAMES = re.compile(r"^(NEWS|changelog|RelNotes)[^/]*(\.gz)?$", re.I)


def stdlib_docstrings() -> Iterator[tuple[str, str]]:
    """(name, text) for every module, class and function docstring of the standard library."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib)
        if relative.parts[0] in ("site-packages", "test", "idlelib", "lib2to3") or "tests" in relative.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        texts = [ast.get_docstring(node) for node in ast.walk(tree)
                 if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        text = "\n\n".join(t for t in texts if t and len(t) > 40)
        if text:
            yield f"stdlib:{relative}", text


def reference_topics() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield f"pydoc:{name}", topics[name]


def files_under(root: Path, pattern: re.Pattern[str]) -> Iterator[tuple[str, str]]:
    if not root.is_dir():
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if not pattern.search(path.name) or (pattern is _PROSE_NAMES and _CHANGELOG_NAMES.search(path.name)):
            continue
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError):
            continue
        if b"\0" in raw[:4096]:
            continue
        text = raw.decode("utf-8", errors="replace")
        if ".htm" in path.name:
            text = html_text(text)
        yield str(path), text


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in ("p", "div", "li", "h1", "h2", "h3", "h4", "pre", "tr", "br", "section"):
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    text = "".join(parser.parts)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", text))


_SENTENCE_END = re.compile(r"[a-z][.!?][\"')\]]?\s")


def reads_as_prose(text: str) -> bool:
    """At least two sentence ends per 1000 characters: keeps manuals, drops tables and glyph lists."""
    return len(_SENTENCE_END.findall(text)) * 1000 >= 2 * len(text)


def sources() -> Iterator[tuple[str, str]]:
    yield from stdlib_docstrings()
    yield from reference_topics()
    yield from files_under(Path("/usr/share/common-licenses"), re.compile(r".*"))
    yield from files_under(Path("/usr/share/doc"), _PROSE_NAMES)
    yield from files_under(Path("/usr/share/vim/vim90/doc"), re.compile(r"\.txt$"))
    yield from files_under(Path("/usr/share/doc"), _LEGAL_NAMES)
    yield from files_under(Path("/usr/share/doc"), _CHANGELOG_NAMES)


def build(limit_bytes: int) -> tuple[list[str], dict[str, int]]:
    """Documents (new paragraphs only) until `limit_bytes` of UTF-8; bytes taken per source kind."""
    seen: set[bytes] = set()
    documents: list[str] = []
    per_source: dict[str, int] = {}
    total = 0
    for name, text in sources():
        kept = []
        for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\f", "\n")):
            key = hashlib.blake2b(" ".join(paragraph.split()).encode(), digest_size=16).digest()
            if paragraph.strip() and key not in seen:
                seen.add(key)
                kept.append(paragraph.strip("\n"))
        document = "\n\n".join(kept)
        if not kept or not reads_as_prose(document):
            continue
        size = len(document.encode())
        if total + size > limit_bytes:
            document = document.encode()[:limit_bytes - total].decode("utf-8", errors="ignore")
            size = len(document.encode())
        documents.append(document)
        kind = name.split(":")[0] if ":" in name else "/".join(name.split("/")[:5])
        per_source[kind] = per_source.get(kind, 0) + size
        total += size
        if total >= limit_bytes:
            break
    return documents, per_source


def corpus_paths(megabytes: int) -> tuple[Path, Path]:
    return DATA_DIR / f"corpus-{megabytes}mb.txt", DATA_DIR / f"corpus-{megabytes}mb.json"


def load_corpus(megabytes: int = DEFAULT_MEGABYTES) -> tuple[list[str], dict]:
    """The corpus as a list of documents, and its description (sources, size, SHA-256)."""
    text_path, meta_path = corpus_paths(megabytes)
    if not (text_path.exists() and meta_path.exists()):
        documents, per_source = build(megabytes * 1024 * 1024)
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        text = DOCUMENT_SEPARATOR.join(documents)
        text_path.write_text(text, encoding="utf-8")
        meta = {"documents": len(documents), "bytes": len(text.encode()), "characters": len(text),
                "sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes_per_source": per_source}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    text = text_path.read_text(encoding="utf-8")
    return text.split(DOCUMENT_SEPARATOR), json.loads(meta_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=DEFAULT_MEGABYTES)
    args = parser.parse_args()
    documents, meta = load_corpus(args.megabytes)
    print(json.dumps({k: v for k, v in meta.items() if k != "bytes_per_source"}, indent=2))
    for source, size in sorted(meta["bytes_per_source"].items(), key=lambda item: -item[1])[:15]:
        print(f"{size / 1e6:8.2f} MB  {source}")


if __name__ == "__main__":
    main()
