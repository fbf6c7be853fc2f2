"""`python -m lib.cli ingest`: walks folders with include/exclude globs, reports progress and a summary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    docs = tmp_path / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "drafts").mkdir()
    (docs / ".git").mkdir()
    (docs / "guides" / "setup.md").write_text("# Setup\n\nInstall the bundle.\n")
    (docs / "guides" / "report.pdf").write_bytes((FIXTURES / "sample.pdf").read_bytes())
    (docs / "drafts" / "idea.md").write_text("# Idea\n\nNot ready.\n")
    (docs / "notes.txt").write_text("Plain notes.\n")
    (docs / "logo.png").write_bytes(b"\x89PNG")
    (docs / ".git" / "HEAD").write_text("ref: main\n")
    monkeypatch.chdir(tmp_path)
    return docs


def sources(database: str, namespace: str) -> list[str]:
    async def read() -> list[str]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            cur = await conn.execute("SELECT source FROM documents WHERE namespace = %s ORDER BY source",
                                     (namespace,))
            return [r[0] for r in await cur.fetchall()]

    return asyncio.run(read())


def test_ingest_walks_a_folder_and_summarises(tree, database, capsys) -> None:
    assert main(["ingest", "docs", "--namespace", "cli", "--exclude", "drafts/*", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["documents"] == 3 and summary["indexed"] == 3 and summary["skipped"] == 1
    assert summary["chunks"] == 4 and summary["tokens"] > 0 and summary["cost_usd"] == 0
    assert "[3/3]" in captured.err
    assert sources(database, "cli") == ["docs/guides/report.pdf", "docs/guides/setup.md", "docs/notes.txt"]

    assert main(["ingest", "docs", "--namespace", "cli", "--exclude", "drafts/*", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["unchanged"] == 3 and again["embedding_tokens"] == 0


def test_include_globs_and_the_text_summary(tree, database, capsys) -> None:
    assert main(["ingest", "docs", "--namespace", "only-md", "--include", "*.md", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "documents: 2 (indexed 2" in out and "seconds:" in out and "cost: $" in out
    assert sources(database, "only-md") == ["docs/drafts/idea.md", "docs/guides/setup.md"]


def test_a_failing_file_is_reported_and_the_rest_go_in(tree, database, capsys) -> None:
    (tree / "broken.pdf").write_bytes(b"%PDF-1.4 nothing here")
    assert main(["ingest", "docs", "--namespace", "broken", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "failed: 1" in captured.out and "broken.pdf" in captured.err
    assert len(sources(database, "broken")) == 4


def test_runs_as_a_module(tree, database) -> None:
    done = subprocess.run([sys.executable, "-m", "lib.cli", "ingest", "docs/notes.txt", "--namespace", "proc"],
                          capture_output=True, text=True, cwd=tree.parent, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "documents: 1 (indexed 1" in done.stdout
