"""Settings read from the environment once per process.

Every variable the bundle reads is declared here, with its default, so the README table and
`.env.example` can be checked against one list. Nothing else in `lib/` reads `os.environ`
for configuration (the provider SDKs read their own base-URL variables, which we pass through).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _str(env: dict[str, str], name: str, default: str = "") -> str:
    return env.get(name, default).strip()


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def _list(env: dict[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())


@dataclass(frozen=True)
class ApiKey:
    """One entry of API_KEYS: the secret and, when limited, the namespaces it may touch."""

    key: str
    namespaces: frozenset[str] | None = None  # None: every namespace

    def allows(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """`k1,k2:docs|faq` -> k1 for every namespace, k2 limited to `docs` and `faq`."""
    keys = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        secret, _, scope = entry.partition(":")
        namespaces = frozenset(n.strip() for n in scope.split("|") if n.strip()) or None
        keys.append(ApiKey(secret.strip(), namespaces))
    return tuple(keys)


@dataclass(frozen=True)
class Settings:
    # --- deployment -------------------------------------------------------------------------
    on_vercel: bool = False
    vercel_env: str = ""  # production | preview | development
    log_level: str = "info"

    # --- database ---------------------------------------------------------------------------
    database_url: str = ""
    pgdata_dir: Path = PROJECT_ROOT / ".data" / "pg"
    db_pool_size: int = 4
    db_connect_timeout_s: float = 5.0

    # --- HTTP edge --------------------------------------------------------------------------
    api_keys: tuple[ApiKey, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4_500_000

    # --- providers (ai_execute, embeddings) -------------------------------------------------
    default_model: str = ""
    openai_api_key: str = ""
    openai_base_url: str = ""
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    groq_api_key: str = ""
    groq_base_url: str = ""
    gemini_api_key: str = ""
    gemini_base_url: str = "https://generativelanguage.googleapis.com/v1beta/openai/"
    openrouter_api_key: str = ""
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    compat_base_url: str = ""  # any OpenAI-compatible server: Ollama, vLLM, LM Studio
    compat_api_key: str = ""
    allow_byok: bool = False

    # --- reliability and cost ---------------------------------------------------------------
    max_retries: int = 2
    retry_max_wait_s: float = 20.0
    request_timeout_s: float = 60.0
    total_timeout_s: float = 280.0
    pricing_file: str = ""
    pricing_overrides: str = ""  # JSON: {"provider/model": {"input": .., "output": .., "cached_input": ..}}
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None
    budget_user_daily_usd: float | None = None
    budget_user_monthly_usd: float | None = None
    rate_limit_rpm: int = 0  # 0: no limit
    cache_ttl_s: int = 3600

    # --- ingestion --------------------------------------------------------------------------
    embedding_model: str = ""
    embedding_concurrency: int = 4
    embedding_batch_size: int = 0  # inputs per embedding request; 0: the model's own limit
    chunk_size_tokens: int = 400
    chunk_overlap_tokens: int = 60
    max_document_bytes: int = 50_000_000
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    presign_expires_s: int = 900

    # --- retrieval and answers --------------------------------------------------------------
    rag_model: str = ""
    context_tokens: int = 3000
    history_tokens: int = 2000
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    cron_secret: str = ""
    reindex_batch: int = 20
    reindex_time_budget_s: float = 240.0

    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.vercel_env == "production"

    @property
    def has_provider_key(self) -> bool:
        return any(
            (self.openai_api_key, self.anthropic_api_key, self.groq_api_key, self.gemini_api_key,
             self.openrouter_api_key)
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        return cls(
            on_vercel=_bool(e, "VERCEL", False),
            vercel_env=_str(e, "VERCEL_ENV"),
            log_level=_str(e, "LOG_LEVEL", "info").lower(),
            database_url=_str(e, "DATABASE_URL"),
            pgdata_dir=Path(_str(e, "PGDATA_DIR") or PROJECT_ROOT / ".data" / "pg"),
            db_pool_size=_int(e, "DATABASE_POOL_SIZE", 4),
            db_connect_timeout_s=_float(e, "DATABASE_CONNECT_TIMEOUT_S", 5.0) or 5.0,
            api_keys=parse_api_keys(e.get("API_KEYS", "")),
            allowed_origins=_list(e, "ALLOWED_ORIGINS"),
            max_body_bytes=_int(e, "MAX_BODY_BYTES", 4_500_000),
            default_model=_str(e, "DEFAULT_MODEL"),
            openai_api_key=_str(e, "OPENAI_API_KEY"),
            openai_base_url=_str(e, "OPENAI_BASE_URL"),
            anthropic_api_key=_str(e, "ANTHROPIC_API_KEY"),
            anthropic_base_url=_str(e, "ANTHROPIC_BASE_URL"),
            groq_api_key=_str(e, "GROQ_API_KEY"),
            groq_base_url=_str(e, "GROQ_BASE_URL"),
            gemini_api_key=_str(e, "GEMINI_API_KEY") or _str(e, "GOOGLE_API_KEY"),
            gemini_base_url=_str(e, "GEMINI_BASE_URL")
            or "https://generativelanguage.googleapis.com/v1beta/openai/",
            openrouter_api_key=_str(e, "OPENROUTER_API_KEY"),
            openrouter_base_url=_str(e, "OPENROUTER_BASE_URL") or "https://openrouter.ai/api/v1",
            compat_base_url=_str(e, "OPENAI_COMPATIBLE_BASE_URL"),
            compat_api_key=_str(e, "OPENAI_COMPATIBLE_API_KEY"),
            allow_byok=_bool(e, "ALLOW_BYOK", False),
            max_retries=_int(e, "MAX_RETRIES", 2),
            retry_max_wait_s=_float(e, "RETRY_MAX_WAIT_S", 20.0) or 0.0,
            request_timeout_s=_float(e, "REQUEST_TIMEOUT_S", 60.0) or 60.0,
            total_timeout_s=_float(e, "TOTAL_TIMEOUT_S", 280.0) or 280.0,
            pricing_file=_str(e, "PRICING_FILE"),
            pricing_overrides=_str(e, "PRICING_OVERRIDES"),
            budget_daily_usd=_float(e, "BUDGET_DAILY_USD", None),
            budget_monthly_usd=_float(e, "BUDGET_MONTHLY_USD", None),
            budget_user_daily_usd=_float(e, "BUDGET_USER_DAILY_USD", None),
            budget_user_monthly_usd=_float(e, "BUDGET_USER_MONTHLY_USD", None),
            rate_limit_rpm=_int(e, "RATE_LIMIT_RPM", 0),
            cache_ttl_s=_int(e, "CACHE_TTL_S", 3600),
            embedding_model=_str(e, "EMBEDDING_MODEL"),
            embedding_concurrency=_int(e, "EMBEDDING_CONCURRENCY", 4),
            embedding_batch_size=_int(e, "EMBEDDING_BATCH_SIZE", 0),
            chunk_size_tokens=_int(e, "CHUNK_SIZE_TOKENS", 400),
            chunk_overlap_tokens=_int(e, "CHUNK_OVERLAP_TOKENS", 60),
            max_document_bytes=_int(e, "MAX_DOCUMENT_BYTES", 50_000_000),
            s3_bucket=_str(e, "S3_BUCKET"),
            s3_endpoint_url=_str(e, "S3_ENDPOINT_URL"),
            s3_region=_str(e, "S3_REGION") or _str(e, "AWS_REGION") or "us-east-1",
            presign_expires_s=_int(e, "PRESIGN_EXPIRES_S", 900),
            rag_model=_str(e, "RAG_MODEL"),
            context_tokens=_int(e, "CONTEXT_TOKENS", 3000),
            history_tokens=_int(e, "HISTORY_TOKENS", 2000),
            bm25_k1=_float(e, "BM25_K1", 1.2) or 1.2,
            bm25_b=_float(e, "BM25_B", 0.75) or 0.0,
            cron_secret=_str(e, "CRON_SECRET"),
            reindex_batch=_int(e, "REINDEX_BATCH", 20),
            reindex_time_budget_s=_float(e, "REINDEX_TIME_BUDGET_S", 240.0) or 240.0,
        )


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
