"""Metadata filters written as LangChain's PGVector users write them, compiled to parameterized SQL.

    {"kind": "faq"}                                equality (several keys: all must hold)
    {"year": {"$gte": 2020}}                       $eq $ne $lt $lte $gt $gte on numbers or strings
    {"lang": {"$in": ["en", "de"]}}                $in / $nin with a list
    {"draft": {"$exists": false}}                  the key is (not) present
    {"$or": [{"kind": "faq"}, {"year": 2024}]}     $and / $or over a list of filters

Keys and values only ever travel as query parameters; the SQL text is built from our own
fragments. Anything else is a 422 that names the offending operator or key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lib import errors

COMPARISONS = {"$eq": "=", "$ne": "<>", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
OPERATORS = (*COMPARISONS, "$in", "$nin", "$exists", "$and", "$or")
MAX_DEPTH = 8
MAX_CONDITIONS = 100


@dataclass
class CompiledFilter:
    """A SQL boolean expression over `{column}` (a jsonb column) and its named parameters."""

    sql: str = "TRUE"
    params: dict[str, Any] = field(default_factory=dict)


class _Compiler:
    def __init__(self, column: str, prefix: str) -> None:
        self.column = column
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def param(self, value: Any, cast: str = "") -> str:
        if len(self.params) >= MAX_CONDITIONS * 3:
            raise _invalid("filter", f"too many conditions (at most {MAX_CONDITIONS})")
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"%({name})s{cast}"

    def node(self, spec: Any, path: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise _invalid(path, f"filters nest at most {MAX_DEPTH} levels deep")
        if not isinstance(spec, dict):
            raise _invalid(path, "a filter must be a JSON object")
        if not spec:
            return "TRUE"
        parts = []
        for key, value in spec.items():
            if key in ("$and", "$or"):
                parts.append(self.logical(key, value, f"{path}.{key}", depth))
            elif key.startswith("$"):
                raise _invalid(f"{path}.{key}", f"unknown operator {key}; at the top of a filter "
                               "use a metadata key, $and or $or")
            elif not key:
                raise _invalid(path, "metadata keys must not be empty")
            else:
                parts.append(self.field(key, value, f"{path}.{key}"))
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def logical(self, operator: str, value: Any, path: str, depth: int) -> str:
        if not isinstance(value, list) or not value:
            raise _invalid(path, f"{operator} takes a non-empty list of filters")
        joiner = " AND " if operator == "$and" else " OR "
        inner = [self.node(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        return "(" + joiner.join(inner) + ")"

    def field(self, key: str, condition: Any, path: str) -> str:
        if not isinstance(condition, dict):
            return self.compare(key, "$eq", condition, path)
        if not condition:
            raise _invalid(path, "an empty condition; use an operator such as $eq")
        parts = []
        for operator, value in condition.items():
            op_path = f"{path}.{operator}"
            if operator in COMPARISONS:
                parts.append(self.compare(key, operator, value, op_path))
            elif operator in ("$in", "$nin"):
                parts.append(self.membership(key, operator, value, op_path))
            elif operator == "$exists":
                if not isinstance(value, bool):
                    raise _invalid(op_path, "$exists takes true or false")
                present = f"({self.column} ? {self.param(key)})"
                parts.append(present if value else f"(NOT {present})")
            else:
                raise _invalid(op_path, f"unknown operator {operator}; use one of {', '.join(OPERATORS)}")
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def compare(self, key: str, operator: str, value: Any, path: str) -> str:
        _check_scalar(value, path, operator)
        if operator == "$eq":
            # containment uses the GIN index on metadata
            return f"({self.column} @> {self.param(json.dumps({key: value}), '::jsonb')})"
        if operator == "$ne":
            return (f"({self.column} ? {self.param(key)} AND NOT "
                    f"({self.column} @> {self.param(json.dumps({key: value}), '::jsonb')}))")
        if value is None or isinstance(value, bool):
            raise _invalid(path, f"{operator} compares numbers or strings")
        # jsonb orders numbers numerically and strings lexically (ISO dates work); comparing
        # across types would follow jsonb's type order, so the types must match.
        literal = self.param(json.dumps(value), "::jsonb")
        target = f"({self.column} -> {self.param(key)})"
        return (f"(jsonb_typeof({target}) = jsonb_typeof({literal}) AND "
                f"{target} {COMPARISONS[operator]} {literal})")

    def membership(self, key: str, operator: str, value: Any, path: str) -> str:
        if not isinstance(value, list) or not value:
            raise _invalid(path, f"{operator} takes a non-empty list of values")
        for i, item in enumerate(value):
            _check_scalar(item, f"{path}[{i}]", operator)
        target = f"({self.column} -> {self.param(key)})"
        inside = f"{target} IN (SELECT jsonb_array_elements({self.param(json.dumps(value), '::jsonb')}))"
        if operator == "$in":
            return f"({inside})"
        return f"({self.column} ? {self.param(key)} AND NOT ({inside}))"


def _check_scalar(value: Any, path: str, operator: str) -> None:
    if isinstance(value, (dict, list)):
        raise _invalid(path, f"{operator} takes a string, number, boolean or null, not "
                       f"{'an object' if isinstance(value, dict) else 'a list'}")


def _invalid(path: str, message: str) -> errors.ValidationFailed:
    return errors.field_error(path, message)


def compile_filter(spec: dict[str, Any] | None, column: str = "c.metadata", prefix: str = "mf") -> CompiledFilter:
    """`{"year": {"$gte": 2020}}` -> SQL over `column` with parameters named `prefix0`, `prefix1`...

    Raises ValidationFailed (422) naming the path and operator of the first bad condition.
    """
    if spec is None:
        return CompiledFilter()
    compiler = _Compiler(column, prefix)
    sql = compiler.node(spec, "filter", 0)
    return CompiledFilter(sql, compiler.params)
