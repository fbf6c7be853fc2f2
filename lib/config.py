"""Settings read from the environment once per process.

Each setting is declared once, as a field of `Settings` naming its variable, default and parser:

    db_pool_size: int = setting("DATABASE_POOL_SIZE", 4, whole(at_least=1))

and `Settings.from_env` reads every field the same way:

- a variable that is unset, empty or only spaces takes the default, so `NAME=` in a `.env` file
  means "not set";
- any other value is stripped, parsed and taken as written: `0` means zero, never the default.
  Where zero or a negative number means nothing (a timeout, a pool size) the parser refuses it;
- a value that does not parse or is out of range raises SettingError naming the variable
  (the endpoint answers it as a 503 configuration_error); it never quietly becomes the default;
- flags are `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; lists are comma-separated.

The README's table and `.env.example` are checked against these declarations (tests/test_config.py).
Nothing else in `lib/` reads `os.environ` for configuration (the provider SDKs read their own
base-URL variables, which we pass through).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

class SettingError(ValueError):
    """An environment variable whose value does not fit its setting; the message names it."""


# A parser turns a stripped, non-empty value into the setting, or raises ValueError saying what
# the value must be ("must be a whole number of at least 1"); the variable's name is added to it.
Parser = Callable[[str], Any]


def setting(variable: str, default: Any, parse: Parser = str, *, also: tuple[str, ...] = ()) -> Any:
    """A `Settings` field read from `variable`, or from the first of `also` that is set."""
    return field(default=default, metadata={"env": (variable, *also), "parse": parse})


def whole(at_least: int = 0) -> Parser:
    def parse(raw: str) -> int:
        try:
            value: int | None = int(raw)
        except ValueError:
            value = None
        if value is None or value < at_least:
            raise ValueError(f"must be a whole number of at least {at_least}")
        return value

    return parse


def number(at_least: float = 0.0, *, above: bool = False, at_most: float = math.inf) -> Parser:
    """A finite decimal number, at least `at_least` (or, with `above`, greater than it)."""
    if at_most < math.inf:
        bound = f"from {at_least:g} to {at_most:g}"
    else:
        bound = f"greater than {at_least:g}" if above else f"of at least {at_least:g}"

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan  # refused below, with the bound in the message
        low_ok = value > at_least if above else value >= at_least
        if not (math.isfinite(value) and low_ok and value <= at_most):
            raise ValueError(f"must be a number {bound}")
        return value

    return parse


def flag(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be one of 1, true, yes, on, 0, false, no, off")


def one_of(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw.lower()

    return parse


def comma_list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def web_address(raw: str) -> str:
    if not raw.startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw


def project_path(raw: str) -> Path:
    """A path; a relative one is relative to the project root, as the default is."""
    return PROJECT_ROOT / Path(raw).expanduser()


# What a caller may do, least first; each role may do everything the ones before it may.
ROLES = ("reader", "writer", "admin")


@dataclass(frozen=True)
class ApiKey:
    """One entry of API_KEYS: the secret, the namespaces it may touch when limited, its role."""

    key: str
    namespaces: frozenset[str] | None = None  # None: every namespace
    role: str | None = None  # None: named before roles existed (see `effective_role`)

    def allows(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    @property
    def effective_role(self) -> str:
        """A key without a role keeps what it could do before roles: all of it when unscoped,
        everything but administration when limited to namespaces."""
        return self.role or ("admin" if self.namespaces is None else "writer")


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """`k1,k2:docs|faq,k3:reader,k4:docs|faq:writer` -> k1 for every namespace, k2 limited to `docs`
    and `faq`; a last segment that is a role name is the key's role."""
    keys = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        secret, _, scope = entry.partition(":")
        head, _, last = scope.rpartition(":")
        role = last.strip().lower() if last.strip().lower() in ROLES else None
        if role:
            scope = head
        namespaces = frozenset(n.strip() for n in scope.split("|") if n.strip()) or None
        keys.append(ApiKey(secret.strip(), namespaces, role))
    return tuple(keys)


@dataclass(frozen=True)
class Settings:
    # --- deployment -------------------------------------------------------------------------
    on_vercel: bool = setting("VERCEL", False, flag)
    vercel_env: str = setting("VERCEL_ENV", "")  # production | preview | development
    log_level: str = setting("LOG_LEVEL", "info", one_of("debug", "info", "warning", "error"))

    # --- database ---------------------------------------------------------------------------
    database_url: str = setting("DATABASE_URL", "")
    # a direct (session) connection for HNSW index builds; empty: DATABASE_URL
    database_url_unpooled: str = setting("DATABASE_URL_UNPOOLED", "")
    pgdata_dir: Path = setting("PGDATA_DIR", PROJECT_ROOT / ".data" / "pg", project_path)
    db_pool_size: int = setting("DATABASE_POOL_SIZE", 4, whole(at_least=1))
    db_connect_timeout_s: float = setting("DATABASE_CONNECT_TIMEOUT_S", 5.0, number(above=True))
    # wait for a free pooled connection; None: the rest of the request's time; 0: none
    db_pool_wait_s: float | None = setting("DATABASE_POOL_WAIT_S", None, number())
    db_statement_timeout_ms: int = setting("DATABASE_STATEMENT_TIMEOUT_MS", 30_000, whole())  # 0: no limit
    db_lock_timeout_ms: int = setting("DATABASE_LOCK_TIMEOUT_MS", 5_000, whole())  # 0: no limit

    # --- HTTP edge --------------------------------------------------------------------------
    api_keys: tuple[ApiKey, ...] = setting("API_KEYS", (), parse_api_keys)
    allowed_origins: tuple[str, ...] = setting("ALLOWED_ORIGINS", (), comma_list)
    max_body_bytes: int = setting("MAX_BODY_BYTES", 4_500_000, whole())

    # --- end users: tokens from the app's identity provider, or its Auth.js session ----------
    auth_jwks_url: str = setting("AUTH_JWKS_URL", "", web_address)
    auth_issuer: str = setting("AUTH_ISSUER", "")
    auth_audience: tuple[str, ...] = setting("AUTH_AUDIENCE", (), comma_list)
    auth_jwt_secret: str = setting("AUTH_JWT_SECRET", "")  # HS256 issuers (Supabase's legacy secret)
    auth_secret: tuple[str, ...] = setting("AUTH_SECRET", (), comma_list)  # Auth.js; newest first
    auth_cookie: str = setting("AUTH_COOKIE", "")  # Clerk: __session
    auth_user_claim: str = setting("AUTH_USER_CLAIM", "sub")
    auth_namespaces_claim: str = setting("AUTH_NAMESPACES_CLAIM", "")
    auth_namespace_template: str = setting("AUTH_NAMESPACE_TEMPLATE", "")  # e.g. user:{sub}
    auth_role_claim: str = setting("AUTH_ROLE_CLAIM", "")
    auth_default_role: str = setting("AUTH_DEFAULT_ROLE", "reader", one_of(*ROLES))
    anonymous_role: str = setting("ANONYMOUS_ROLE", "", one_of("reader", "writer"))  # "": no anonymous access
    anonymous_namespaces: tuple[str, ...] = setting("ANONYMOUS_NAMESPACES", (), comma_list)
    anonymous_rate_limit_rpm: int = setting("ANONYMOUS_RATE_LIMIT_RPM", 10, whole())  # per client address

    # --- local server (python -m lib.cli serve) ---------------------------------------------
    host: str = setting("HOST", "127.0.0.1")
    port: int = setting("PORT", 8000, whole(at_least=1))

    # --- providers (ai_execute, embeddings) -------------------------------------------------
    default_model: str = setting("DEFAULT_MODEL", "")
    openai_api_key: str = setting("OPENAI_API_KEY", "")
    openai_base_url: str = setting("OPENAI_BASE_URL", "")
    anthropic_api_key: str = setting("ANTHROPIC_API_KEY", "")
    anthropic_base_url: str = setting("ANTHROPIC_BASE_URL", "")
    groq_api_key: str = setting("GROQ_API_KEY", "")
    groq_base_url: str = setting("GROQ_BASE_URL", "")
    gemini_api_key: str = setting("GEMINI_API_KEY", "", also=("GOOGLE_API_KEY",))
    gemini_base_url: str = setting("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com/v1beta/openai/")
    openrouter_api_key: str = setting("OPENROUTER_API_KEY", "")
    openrouter_base_url: str = setting("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
    # any OpenAI-compatible server: Ollama, vLLM, LM Studio
    compat_base_url: str = setting("OPENAI_COMPATIBLE_BASE_URL", "")
    compat_api_key: str = setting("OPENAI_COMPATIBLE_API_KEY", "")
    allow_byok: bool = setting("ALLOW_BYOK", False, flag)

    # --- reliability and cost ---------------------------------------------------------------
    max_retries: int = setting("MAX_RETRIES", 2, whole())
    retry_max_wait_s: float = setting("RETRY_MAX_WAIT_S", 20.0, number())
    request_timeout_s: float = setting("REQUEST_TIMEOUT_S", 60.0, number(above=True))
    total_timeout_s: float = setting("TOTAL_TIMEOUT_S", 280.0, number(above=True))
    pricing_file: str = setting("PRICING_FILE", "")
    # JSON: {"provider/model": {"input": .., "output": .., "cached_input": ..}}
    pricing_overrides: str = setting("PRICING_OVERRIDES", "")
    budget_daily_usd: float | None = setting("BUDGET_DAILY_USD", None, number())  # None: no limit
    budget_monthly_usd: float | None = setting("BUDGET_MONTHLY_USD", None, number())
    budget_user_daily_usd: float | None = setting("BUDGET_USER_DAILY_USD", None, number())
    budget_user_monthly_usd: float | None = setting("BUDGET_USER_MONTHLY_USD", None, number())
    budget_anonymous_daily_usd: float | None = setting("BUDGET_ANONYMOUS_DAILY_USD", None, number())
    rate_limit_rpm: int = setting("RATE_LIMIT_RPM", 0, whole())  # 0: no limit
    cache_ttl_s: int = setting("CACHE_TTL_S", 3600, whole())  # 0: no response cache

    # --- assistant (ai_execute's chats) -----------------------------------------------------
    # what happens to the turns of a chat that no longer fit the model's window (a request's
    # `context` field overrides it): dropped, oldest first, or folded into a running summary
    context_strategy: str = setting("CONTEXT_STRATEGY", "drop", one_of("drop", "summarize"))
    summary_model: str = setting("SUMMARY_MODEL", "")  # empty: the request's own model

    # --- ingestion --------------------------------------------------------------------------
    embedding_model: str = setting("EMBEDDING_MODEL", "")
    # Which models a request may name; each new one gets its own HNSW index. Empty: the default
    # model, the offline ones and the known provider models at their full size; `*`: any.
    embedding_models: tuple[str, ...] = setting("EMBEDDING_MODELS", (), comma_list)
    embedding_concurrency: int = setting("EMBEDDING_CONCURRENCY", 4, whole(at_least=1))
    # inputs per embedding request; 0: the model's own limit
    embedding_batch_size: int = setting("EMBEDDING_BATCH_SIZE", 0, whole())
    chunk_size_tokens: int = setting("CHUNK_SIZE_TOKENS", 400, whole(at_least=1))
    chunk_overlap_tokens: int = setting("CHUNK_OVERLAP_TOKENS", 60, whole())
    max_document_bytes: int = setting("MAX_DOCUMENT_BYTES", 50_000_000, whole())
    s3_bucket: str = setting("S3_BUCKET", "")
    s3_endpoint_url: str = setting("S3_ENDPOINT_URL", "")
    s3_region: str = setting("S3_REGION", "us-east-1", also=("AWS_REGION",))
    presign_expires_s: int = setting("PRESIGN_EXPIRES_S", 900, whole(at_least=1))

    # --- retrieval and answers --------------------------------------------------------------
    rag_model: str = setting("RAG_MODEL", "")
    context_tokens: int = setting("CONTEXT_TOKENS", 3000, whole())
    history_tokens: int = setting("HISTORY_TOKENS", 2000, whole())
    bm25_k1: float = setting("BM25_K1", 1.2, number())
    bm25_b: float = setting("BM25_B", 0.75, number(at_most=1.0))
    # None: by the size of the model's index (lib/ingest/vector_index.py: 200 up to 2M chunks)
    hnsw_ef_search: int | None = setting("HNSW_EF_SEARCH", None, whole(at_least=1))
    # how new HNSW indexes store vectors: halfvec (2 bytes a dimension) or vector (4)
    vector_index_storage: str = setting("VECTOR_INDEX_STORAGE", "halfvec", one_of("halfvec", "vector"))
    # 0: off; R: a binary-quantized HNSW first pass of R times the candidates, re-ranked exactly
    vector_binary_rerank: int = setting("VECTOR_BINARY_RERANK", 0, whole())
    # maintenance_work_mem of an index build, at most this (and no more than the build needs)
    vector_index_build_memory_mb: int = setting("VECTOR_INDEX_BUILD_MEMORY_MB", 2048, whole(at_least=64))
    # the reindex cron (re)builds the indexes of models up to this many chunks; larger: the CLI
    vector_index_cron_max_chunks: int = setting("VECTOR_INDEX_CRON_MAX_CHUNKS", 250_000, whole())
    # keyword queries whose terms have at most this many postings in all are scored exhaustively;
    # longer ones read each term's postings in impact order, at most BM25_MAX_DEPTH per term
    bm25_exact_postings: int = setting("BM25_EXACT_POSTINGS", 20_000, whole())
    bm25_max_depth: int = setting("BM25_MAX_DEPTH", 8_000, whole(at_least=10))
    # the reindex cron recomputes a namespace's impacts when its avgdl moved more than this
    bm25_impact_drift: float = setting("BM25_IMPACT_DRIFT", 0.1, number())
    cron_secret: str = setting("CRON_SECRET", "")
    reindex_batch: int = setting("REINDEX_BATCH", 20, whole(at_least=1))
    reindex_time_budget_s: float = setting("REINDEX_TIME_BUDGET_S", 240.0, number(above=True))

    # --- prompts and experiments ------------------------------------------------------------
    # how stale a resolved prompt label or experiment may be on one instance; 0: read every time
    prompt_cache_ttl_s: float = setting("PROMPT_CACHE_TTL_S", 5.0, number())

    # --- observability ----------------------------------------------------------------------
    metrics_enabled: bool = setting("METRICS_ENABLED", True, flag)
    # raw request rows and hourly rollups; daily rollups
    metrics_retention_days: int = setting("METRICS_RETENTION_DAYS", 30, whole(at_least=1))
    metrics_rollup_retention_days: int = setting("METRICS_ROLLUP_RETENTION_DAYS", 400, whole(at_least=1))
    alert_webhook_url: str = setting("ALERT_WEBHOOK_URL", "")  # Slack or Discord incoming webhook
    # 0.05: alert when more than 5% of the last hour's requests failed; None: no error-rate alert
    alert_error_rate: float | None = setting("ALERT_ERROR_RATE", None, number(at_most=1.0))
    # an hour with fewer requests than this never raises the error-rate alert
    alert_min_requests: int = setting("ALERT_MIN_REQUESTS", 20, whole(at_least=1))

    @property
    def is_production(self) -> bool:
        return self.vercel_env.lower() == "production"

    @property
    def identity_methods(self) -> tuple[str, ...]:
        """How end users may prove who they are here (names only, never a secret)."""
        methods = {"jwks": self.auth_jwks_url, "jwt_secret": self.auth_jwt_secret,
                   "authjs_session": self.auth_secret}
        return tuple(name for name, configured in methods.items() if configured)

    @property
    def has_provider_key(self) -> bool:
        return any(
            (self.openai_api_key, self.anthropic_api_key, self.groq_api_key, self.gemini_api_key,
             self.openrouter_api_key)
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every declared setting from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for declared in fields(cls):
            variables, parse = declared.metadata["env"], declared.metadata["parse"]
            name, raw = next(((v, env[v].strip()) for v in variables if env.get(v, "").strip()), ("", ""))
            if not raw:
                continue
            try:
                values[declared.name] = parse(raw)
            except ValueError as exc:
                raise SettingError(f"{name} {exc}") from None
        return cls(**values)


def load_dotenv(path: Path | None = None) -> list[str]:
    """Put the project's `.env` into the environment, as `make dev` and Next.js do, without
    replacing a variable that is already set (even to an empty value): what the shell says wins.
    Returns the names it set.

    The command line calls this (`python -m lib.cli`, `python api/<name>.py`); deployed functions
    never do, since Vercel sets their environment. Under pytest (`PYTEST_VERSION` is set, and its
    subprocesses inherit it) the file is left alone, so a developer's keys never change a test."""
    if "PYTEST_VERSION" in os.environ:
        return []
    loaded = []
    for name, value in read_dotenv(PROJECT_ROOT / ".env" if path is None else path).items():
        if name not in os.environ:
            os.environ[name] = value
            loaded.append(name)
    return loaded


_DOTENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_DOTENV_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def read_dotenv(path: Path) -> dict[str, str]:
    """The `NAME=value` lines of a dotenv file (none if it does not exist), in the format shells and
    python-dotenv agree on: `#` comments, an optional `export `, and values that are bare (a ` #`
    ends them), in single quotes (literal) or in double quotes (with backslash escapes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return {}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            raise SettingError(f"{path.name} line {number}: expected NAME=value")
        values[match[1]] = _dotenv_value(match[2].strip())
    return values


def _dotenv_value(raw: str) -> str:
    quote = raw[:1]
    if quote in ("'", '"') and len(raw) >= 2 and quote in raw[1:]:
        inner = raw[1:raw.rindex(quote)]
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: _DOTENV_ESCAPES.get(m[1], m[0]), inner)
    return raw.split(" #", 1)[0].rstrip()


def variables() -> dict[str, Any]:
    """Every variable the settings read, with its default (aliases such as GOOGLE_API_KEY too)."""
    return {name: declared.default for declared in fields(Settings) for name in declared.metadata["env"]}


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings()` reads the environment again
    (tests and the CLI use this after changing variables)."""
    global _settings
    _settings = None
