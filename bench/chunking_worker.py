"""One chunker of the chunking benchmark, run inside the environment that has it installed.

Reads the corpus (documents separated by a form-feed line), chunks every document a few times
with the timer running, then, with the timer stopped, measures the chunks: sizes in characters,
how many end at a sentence end, and how many cut a word in two. Prints one JSON object.
Uses the standard library only, besides the chunker itself.

    python bench/chunking_worker.py CHUNKER CORPUS_PATH --size 1000 --overlap 200 [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable

DOCUMENT_SEPARATOR = "\f\n"
Chunker = Callable[[str], list[str]]


def project_chunker(size: int, overlap: int) -> Chunker:
    """lib.ingest.chunking with a token budget equivalent to `size` characters (ratio given by the caller)."""
    from lib.ingest.chunking import chunk_text

    return lambda text: [chunk.text for chunk in chunk_text(text, size_tokens=size, overlap_tokens=overlap)]


def langchain_chunker(size: int, overlap: int) -> Chunker:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap).split_text


def semantic_text_splitter_chunker(size: int, overlap: int) -> Chunker:
    from semantic_text_splitter import TextSplitter

    return TextSplitter(size, overlap=overlap).chunks


def chonkie_sentence_chunker(size: int, overlap: int) -> Chunker:
    from chonkie import SentenceChunker

    chunker = SentenceChunker(tokenizer="character", chunk_size=size, chunk_overlap=overlap)
    return lambda text: [chunk.text for chunk in chunker.chunk(text)]


def chonkie_recursive_chunker(size: int, overlap: int) -> Chunker:
    from chonkie import RecursiveChunker

    chunker = RecursiveChunker(tokenizer="character", chunk_size=size)  # has no overlap option
    return lambda text: [chunk.text for chunk in chunker.chunk(text)]


CHUNKERS = {
    "project": project_chunker,
    "langchain": langchain_chunker,
    "semantic-text-splitter": semantic_text_splitter_chunker,
    "chonkie-sentence": chonkie_sentence_chunker,
    "chonkie-recursive": chonkie_recursive_chunker,
}

_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def boundary_figures(documents: list[str], chunked: list[list[str]]) -> dict:
    """Where the chunks end, found by locating each chunk in its document."""
    ends_sentence = ends_line = cuts_word = located = total = 0
    for document, chunks in zip(documents, chunked, strict=True):
        cursor = 0
        for text in chunks:
            total += 1
            body = text.rstrip()
            start = document.find(body, cursor) if body else -1
            if start < 0:
                start = document.find(body)
            after = ""
            if start >= 0:
                located += 1
                cursor = start + 1
                after = document[start + len(body):start + len(body) + 1]
            at_document_end = start >= 0 and not document[start + len(body):].strip()
            if _SENTENCE_END.search(body) or at_document_end:
                ends_sentence += 1
                ends_line += 1
            elif after in ("\n", "\r"):
                ends_line += 1
            if body and after and body[-1].isalnum() and after.isalnum():
                cuts_word += 1
    total = total or 1
    return {"ends_sentence": ends_sentence / total, "ends_sentence_or_line": ends_line / total,
            "cuts_word": cuts_word / total, "located": located / total}


def size_figures(chunked: list[list[str]], size: int) -> dict:
    lengths = sorted(len(text) for chunks in chunked for text in chunks)
    if not lengths:
        return {"chunks": 0}
    def at(fraction: float) -> int:
        return lengths[int(fraction * (len(lengths) - 1))]

    return {"chunks": len(lengths), "mean": statistics.fmean(lengths), "p5": at(0.05),
            "p50": at(0.5), "p95": at(0.95), "max": lengths[-1],
            "over_size": sum(1 for n in lengths if n > size) / len(lengths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("chunker", choices=sorted(CHUNKERS))
    parser.add_argument("corpus")
    parser.add_argument("--size", type=int, required=True, help="chunk size (tokens for project, else characters)")
    parser.add_argument("--overlap", type=int, required=True)
    parser.add_argument("--chars", type=int, default=1000, help="the size in characters, for over-size counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit-mb", type=float, default=0, help="use only the first N MB of the corpus")
    args = parser.parse_args()

    with open(args.corpus, encoding="utf-8") as handle:
        text = handle.read()
    if args.limit_mb:
        text = text[:int(args.limit_mb * 1024 * 1024)]
    documents = [d for d in text.split(DOCUMENT_SEPARATOR) if d.strip()]
    megabytes = sum(len(d.encode()) for d in documents) / (1024 * 1024)

    started = time.perf_counter()
    chunk = CHUNKERS[args.chunker](args.size, args.overlap)
    setup_s = time.perf_counter() - started
    for document in documents[:20]:  # warm-up: lazy imports, regex compilation, caches
        chunk(document)
    timings = []
    chunked: list[list[str]] = []
    for _ in range(args.runs):
        started = time.perf_counter()
        chunked = [chunk(document) for document in documents]
        timings.append(time.perf_counter() - started)
    print(json.dumps({
        "chunker": args.chunker, "megabytes": megabytes, "documents": len(documents),
        "setup_s": setup_s, "runs_s": timings, "seconds_p50": statistics.median(timings),
        "mb_per_s": megabytes / statistics.median(timings),
        "sizes": size_figures(chunked, args.chars), "boundaries": boundary_figures(documents, chunked),
    }))


if __name__ == "__main__":
    main()
