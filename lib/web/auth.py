"""Who may run the reindex cron: a caller presenting `Authorization: Bearer $CRON_SECRET`.

With no secret configured it runs for anyone locally, and refuses to run in production.
"""

from __future__ import annotations

import hmac

from lib import errors
from lib.web import Request


def check_cron_secret(request: Request) -> None:
    secret = request.settings.cron_secret
    if not secret:
        if request.settings.is_production:
            raise errors.ConfigurationError(
                "CRON_SECRET is not set on a production deployment; refusing to run the reindex cron")
        return
    scheme, _, token = request.header("authorization").partition(" ")
    # compare in constant time, whatever was sent
    valid = hmac.compare_digest(token.strip().encode(), secret.encode()) and scheme.lower() == "bearer"
    if not valid:
        raise errors.Unauthorized("missing or wrong cron secret: send Authorization: Bearer <CRON_SECRET>",
                                  headers={"www-authenticate": "Bearer"})
