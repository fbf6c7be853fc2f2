"""Field types that request models share, declared once so every function validates them alike.

Kept out of `lib.web` itself so a function without request models (health) never imports pydantic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A namespace keys documents, S3 key prefixes and API-key scopes, in bodies and query strings
# alike; the narrow alphabet keeps it safe in an object key and readable in a log line.
Namespace = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@/-]+$")]
