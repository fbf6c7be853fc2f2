"""The benchmark harness measures what it says: statistics, chunk boundaries, package grouping,
the fake server's wire format, and RESULTS.md keeping sections it did not re-run. No timings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import bundle_size  # noqa: E402
import chunking_worker  # noqa: E402
import corpus  # noqa: E402
import measure  # noqa: E402
import run  # noqa: E402


def test_percentiles_interpolate_like_numpy() -> None:
    assert measure.percentile([1, 2, 3, 4, 5], 0.5) == 3
    assert measure.percentile([10, 20], 0.95) == pytest.approx(19.5)
    assert measure.summary([3.0, 1.0, 2.0]) == {"p50": 2.0, "p95": pytest.approx(2.9), "n": 3}


def test_a_fresh_process_reports_its_own_exit_status_and_output() -> None:
    result = measure.run_process([sys.executable, "-c", "print('hi'); raise SystemExit(3)"])
    assert (result.returncode, result.stdout.strip()) == (3, "hi")
    assert result.wall_s > 0 and result.peak_rss_mb > 1


def test_chunk_boundaries_are_found_in_the_document() -> None:
    document = "One sentence here. Another one\nthat goes on. Last words"
    chunks = ["One sentence here.", "Another one", "that go", "es on. Last words"]
    figures = chunking_worker.boundary_figures([document], [chunks])
    # "here." ends a sentence; "Last words" ends the document; "Another one" ends a line;
    # "that go" cuts "goes" in two
    assert figures["ends_sentence"] == 0.5
    assert figures["ends_sentence_or_line"] == 0.75
    assert figures["cuts_word"] == 0.25
    assert figures["located"] == 1.0


def test_chunk_sizes_count_chunks_over_the_budget() -> None:
    figures = chunking_worker.size_figures([["a" * 10, "b" * 30], ["c" * 20]], size=25)
    assert figures["chunks"] == 3 and figures["max"] == 30 and figures["p50"] == 20
    assert figures["over_size"] == pytest.approx(1 / 3)


def test_corpus_keeps_prose_and_drops_tables() -> None:
    assert corpus.reads_as_prose("This is a sentence. And another one follows it. " * 5)
    assert not corpus.reads_as_prose("U+0ec3 uni0EC3 2.10 (Sans, Sans Bold) 2.11 " * 20)
    assert corpus.html_text("<p>Hello <b>there</b>.</p><script>x()</script><p>Next.</p>").split() == [
        "Hello", "there.", "Next."]


def test_package_folders_group_under_one_distribution() -> None:
    names = {bundle_size.distribution_of(n) for n in
             ["numpy", "numpy.libs", "numpy-2.1.0.dist-info", "typing_extensions.py",
              "typing_extensions-4.12.2.dist-info"]}
    assert names == {"numpy", "typing_extensions"}


def test_the_fake_server_speaks_openai_chat_to_the_official_sdk() -> None:
    openai = pytest.importorskip("openai")
    process = subprocess.Popen([sys.executable, str(BENCH / "fake_openai.py")], stdout=subprocess.PIPE,
                               text=True)
    try:
        port = int(process.stdout.readline())
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from the benchmark server."
        assert reply.usage.completion_tokens == 6
        stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        text = "".join(e.choices[0].delta.content or "" for e in stream if e.choices)
        assert text == "Hello from the benchmark server."
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_results_keep_sections_that_were_not_re_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(run, "RESULTS", results)
    first = {"scifact": {"markdown": "## SciFact\n\nnDCG 0.7", "command": "python bench/scifact.py"}}
    results.write_text(run.render(first, {}, ["gateway", "scifact"], full=True, quick=False))
    second = {"gateway": {"markdown": "## Gateway\n\n1 ms", "command": "python bench/gateway.py"}}
    text = run.render(second, run.previous_sections(), ["gateway", "scifact"], full=False, quick=False)
    assert "## Gateway" in text and "## SciFact" in text and "nDCG 0.7" in text
    assert "Kept from an earlier run" in text.split("## Gateway")[1]
    assert text.index("## Gateway") < text.index("## SciFact")
    # kept again: each section still carries the mark once
    results.write_text(text)
    again = run.render({}, run.previous_sections(), ["gateway", "scifact"], full=False, quick=False)
    assert again.count("Kept from an earlier run") == 2
    # a dated note in the header (a section measured by its own script) survives the next run
    note = "- 2026-11-29: the SciFact section was measured by its own script."
    results.write_text(again.replace("\n- Machine:", f"\n{note}\n- Machine:", 1))
    rewritten = run.render(second, run.previous_sections(), ["gateway", "scifact"], full=False, quick=False,
                           notes=run.previous_notes())
    assert rewritten.count(note) == 1 and rewritten.index(note) < rewritten.index("<!-- bench:")


def test_ratio_formatting_refuses_empty_denominators() -> None:
    assert measure.ratio(10, 2) == "5.0x"
    assert measure.ratio(1, 0) == "n/a"


def test_the_scale_server_settings_compare_in_one_unit() -> None:
    """Postgres shows 8192MB as 8GB and 900s as 15min: a setting already applied is not applied
    (and the server restarted) again."""
    import pg

    assert pg._normalized("8GB") == pg._normalized("8192MB") != pg._normalized("8MB")
    assert pg._normalized("15min") == pg._normalized("900s")
    settings = pg.scale_settings()
    buffers, cache = (int(settings[k].removesuffix("MB")) for k in ("shared_buffers", "effective_cache_size"))
    assert 0 < buffers <= 8192 and cache >= 2 * buffers
