"""Metadata filters: parameterized SQL, LangChain PGVector semantics, and 422s naming the operator."""

from __future__ import annotations

import asyncio

import pytest

from lib import db, errors
from lib.retrieval.filters import compile_filter

ROWS = [
    {"kind": "faq", "year": 2024, "lang": "en", "date": "2024-05-01"},
    {"kind": "faq", "year": 2019, "lang": "de", "draft": True},
    {"kind": "guide", "year": 2021, "lang": "en", "date": "2021-01-15"},
    {"kind": "guide", "year": "2022", "lang": "fr"},  # a year stored as a string
    {"title": "no kind at all"},
]


def test_values_never_enter_the_sql_text() -> None:
    hostile = "x'); DROP TABLE chunks; --"
    compiled = compile_filter({hostile: hostile, "$or": [{"a": {"$in": [hostile]}}, {"b": {"$gt": hostile}}]})
    assert hostile not in compiled.sql and "DROP" not in compiled.sql
    assert any(hostile in str(value) for value in compiled.params.values())


@pytest.mark.parametrize(("spec", "message"), [
    ({"year": {"$regex": "x"}}, "unknown operator $regex"),
    ({"$not": {"kind": "faq"}}, "unknown operator $not"),
    ({"year": {"$in": []}}, "$in takes a non-empty list"),
    ({"year": {"$nin": 5}}, "$nin takes a non-empty list"),
    ({"$or": {"kind": "faq"}}, "$or takes a non-empty list"),
    ({"year": {"$lt": True}}, "$lt compares numbers or strings"),
    ({"year": {"$eq": [1, 2]}}, "$eq takes a string, number, boolean or null"),
    ({"year": {}}, "an empty condition"),
    ({"": 1}, "must not be empty"),
    ("kind", "must be a JSON object"),
])
def test_bad_filters_name_the_problem(spec, message: str) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        compile_filter(spec)
    assert message in caught.value.message
    assert caught.value.message.startswith("filter")


def test_deep_nesting_is_refused() -> None:
    spec: dict = {"kind": "faq"}
    for _ in range(12):
        spec = {"$and": [spec]}
    with pytest.raises(errors.ValidationFailed, match="nest at most"):
        compile_filter(spec)


CASES = [
    ({"kind": "faq"}, [0, 1]),
    ({"kind": {"$eq": "faq"}, "lang": "en"}, [0]),
    ({"kind": {"$ne": "faq"}}, [2, 3]),  # like LangChain: only rows that have the key
    ({"year": {"$gte": 2021}}, [0, 2]),  # numbers only: "2022" is a string
    ({"year": {"$gte": "2020"}}, [3]),
    ({"year": {"$lt": 2021, "$gt": 2000}}, [1]),
    ({"date": {"$gte": "2022-01-01"}}, [0]),  # ISO dates compare as strings
    ({"lang": {"$in": ["de", "fr"]}}, [1, 3]),
    ({"lang": {"$nin": ["de", "fr"]}}, [0, 2]),
    ({"draft": {"$exists": True}}, [1]),
    ({"kind": {"$exists": False}}, [4]),
    ({"$or": [{"kind": "guide"}, {"draft": True}]}, [1, 2, 3]),
    ({"$and": [{"kind": "faq"}, {"$or": [{"lang": "de"}, {"year": 2024}]}]}, [0, 1]),
    ({}, [0, 1, 2, 3, 4]),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_filter_semantics_in_postgres(database: str, spec: dict, expected: list[int]) -> None:
    import json

    compiled = compile_filter(spec, column="m.doc")

    async def main() -> list[int]:
        try:
            async with db.connect() as conn:
                cur = await conn.execute(
                    "SELECT m.i FROM (SELECT (ordinality - 1)::int AS i, value AS doc"
                    " FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY) m"
                    f" WHERE {compiled.sql} ORDER BY m.i", {"rows": json.dumps(ROWS), **compiled.params})
                return [row[0] for row in await cur.fetchall()]
        finally:
            await db.close_pools()

    assert asyncio.run(main()) == expected
