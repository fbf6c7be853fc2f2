-- The LLM gateway's state: the usage ledger, spend counters for budgets, rate-limit windows and
-- the response cache. Everything lives here so any number of instances share it.

-- One row per provider attempt (chat or embedding), failed ones included, and per cache hit.
CREATE TABLE IF NOT EXISTS usage_ledger (
    id             bigserial PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    request_id     text,
    user_id        text,             -- the end user named by the caller (`user`), if any
    caller         text,             -- a non-secret name of the API key
    provider       text NOT NULL,
    model          text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('chat', 'embedding')),
    attempt        integer NOT NULL DEFAULT 1,
    status         text NOT NULL CHECK (status IN ('ok', 'error', 'cached')),
    error_code     text,
    http_status    integer,
    input_tokens   integer NOT NULL DEFAULT 0,
    output_tokens  integer NOT NULL DEFAULT 0,
    cached_tokens  integer NOT NULL DEFAULT 0,
    cost_usd       numeric(16, 8),   -- NULL: the model has no known price
    latency_ms     double precision,
    cache_hit      boolean NOT NULL DEFAULT false,
    streamed       boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS usage_ledger_created_at ON usage_ledger (created_at);
CREATE INDEX IF NOT EXISTS usage_ledger_user ON usage_ledger (user_id, created_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_ledger_request ON usage_ledger (request_id);

-- Spend per scope ('global' or 'user:<id>') per UTC day and month, kept in step with the ledger
-- in the same transaction, so a budget check is one indexed read instead of a sum over the ledger.
CREATE TABLE IF NOT EXISTS spend_counters (
    scope         text NOT NULL,
    period        text NOT NULL CHECK (period IN ('day', 'month')),
    period_start  date NOT NULL,
    spent_usd     numeric(16, 8) NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, period, period_start)
);

-- Requests per subject (an API key or a user) per one-minute window.
CREATE TABLE IF NOT EXISTS rate_limit_windows (
    subject       text NOT NULL,
    window_start  timestamptz NOT NULL,
    requests      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, window_start)
);
CREATE INDEX IF NOT EXISTS rate_limit_windows_start ON rate_limit_windows (window_start);

-- Complete responses keyed by a hash of (model, messages, parameters).
CREATE TABLE IF NOT EXISTS response_cache (
    cache_key   text PRIMARY KEY,
    model       text NOT NULL,
    response    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS response_cache_expires ON response_cache (expires_at);
