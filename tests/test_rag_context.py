"""Packing passages into a token budget, citations of [n] markers, and the extractive answer."""

from __future__ import annotations

from lib.retrieval.context import NO_ANSWER, cite, extractive_answer, pack_context, sentences
from lib.retrieval.search import SearchHit
from lib.tokens import count_tokens

DOCUMENT = ("Kettles boil water. The warranty lasts two years from purchase. "
            "Refunds take five business days. Descale monthly with vinegar.")


def hit(chunk_id: int, position: int, start: int, end: int, score: float, document: str = "d1") -> SearchHit:
    return SearchHit(chunk_id=chunk_id, score=score, document_id=document, source=f"{document}.txt",
                     text=DOCUMENT[start:end], position=position, char_start=start, char_end=end)


def test_neighbours_merge_without_repeating_their_overlap() -> None:
    # chunks 0 and 1 overlap by "The warranty lasts two years"
    first = hit(1, 0, 0, 62, 0.9)
    second = hit(2, 1, 20, 96, 0.8)
    [passage] = pack_context([first, second], budget_tokens=1000)
    assert passage.text == DOCUMENT[0:96]
    assert passage.chunk_ids == [1, 2]


def test_duplicates_are_dropped_and_the_budget_holds() -> None:
    a = hit(1, 0, 0, 62, 0.9)
    far = hit(3, 5, 97, len(DOCUMENT), 0.7)
    other = hit(4, 0, 0, 19, 0.6, document="d2")
    passages = pack_context([a, a, far, other], budget_tokens=1000)
    assert [p.chunk_ids for p in passages] == [[1], [3], [4]]
    assert [p.number for p in passages] == [1, 2, 3]
    budget = count_tokens(a.text) + count_tokens(other.text)
    assert count_tokens(far.text) > count_tokens(other.text)
    tight = pack_context([a, far, other], budget_tokens=budget)
    assert [p.chunk_ids for p in tight] == [[1], [4]]  # the one that did not fit is skipped


def test_citations_follow_the_markers_and_quote_the_best_sentence() -> None:
    passages = pack_context([hit(1, 0, 0, len(DOCUMENT), 1.0)], budget_tokens=1000)
    [citation] = cite("Refunds are paid within five business days [1]. Unknown [7].", passages)
    assert citation.quote == "Refunds take five business days."
    assert DOCUMENT[citation.quote_start:citation.quote_end] == citation.quote


def test_extractive_answer_quotes_and_cites_or_declines() -> None:
    passages = pack_context([hit(1, 0, 0, len(DOCUMENT), 1.0)], budget_tokens=1000)
    extract = extractive_answer("How long does the warranty last?", passages)
    assert "The warranty lasts two years from purchase. [1]" in extract.text
    assert extract.citations[0].quote == "The warranty lasts two years from purchase."
    assert extractive_answer("Who painted the Mona Lisa?", passages).text == NO_ANSWER


def test_headings_are_not_quoted() -> None:
    text = "# Warranty\n\nThe warranty lasts two years from purchase."
    chunk = SearchHit(chunk_id=1, score=1.0, document_id="d", source="m.md", text=text, char_end=len(text))
    extract = extractive_answer("warranty", pack_context([chunk], 1000))
    assert "# Warranty" not in extract.text and "two years" in extract.text


def test_sentences_split_on_punctuation_and_blank_lines() -> None:
    text = "First one. Second one!\n\nThird line\n- a bullet"
    assert [text[s:e] for s, e in sentences(text)] == ["First one.", "Second one!", "Third line", "- a bullet"]


def test_long_unpunctuated_text_is_quoted_in_part() -> None:
    text = "config = " + " ".join(f"value{i}" for i in range(200))
    chunk = SearchHit(chunk_id=1, score=1.0, document_id="d", source="c.py", text=text, char_end=len(text))
    passages = pack_context([chunk], 5000)
    [citation] = cite("It sets value7 [1].", passages)
    assert len(citation.quote) <= 300 and text.startswith(citation.quote)
    assert citation.quote_end - citation.quote_start == len(citation.quote)
    assert extractive_answer("config value7", passages).text == NO_ANSWER  # no prose to quote


def test_pdf_lines_starting_with_a_capital_are_sentences() -> None:
    text = "Quarterly report\nRevenue grew in the third quarter.\nCosts stayed flat."
    assert [text[s:e] for s, e in sentences(text)] == [
        "Quarterly report", "Revenue grew in the third quarter.", "Costs stayed flat."]
