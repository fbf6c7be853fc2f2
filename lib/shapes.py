"""The base of the models that document what each function answers (`lib/*/response.py`).

Handlers return plain dicts; these models exist for the contract (the OpenAPI document and the
TypeScript types are generated from them) and for the tests that hold real answers to it. So no
function imports them on a request, and a function's cold start does not pay for them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    """A response shape: every key documented, none other sent."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
