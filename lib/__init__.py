"""The shared library behind every function in `api/`. Nothing here imports from `api/`.

Wiring that the one-way import order cannot express: the HTTP edge (`lib.web`) hands every
finished request to whoever listens, and the request recorder (`lib.observe.record`, above the
edge) listens. Importing it here registers it in every process, whichever function it serves.
"""

from lib.observe import record as _request_recorder  # noqa: F401 - registers itself with lib.web.trace
