"""Settings for the EXAI server. Every knob is an environment variable (see .env.example)."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from exai_site.env import env_bool, env_float, env_int, env_list, env_rate, env_str, installation_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", True)
# The key signs every JWT: a known one lets anyone forge an admin token. A DEBUG-off process
# (production) refuses to start without one; a development server with none makes its own,
# kept private (mode 0600) beside the data, so `make run` needs no configuration.
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG is off and neither DJANGO_SECRET_KEY nor DJANGO_SECRET_KEY_FILE is set; refusing to "
            "start with a key others could know. Set one to a long random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, the same in every server process."
        )
    SECRET_KEY = installation_secret_key(BASE_DIR / "var" / "secret_key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
# Browser pages on other origins allowed to open the WebSockets and POST /mcp, and trusted for
# CSRF (e.g. https://exai.example.com behind a TLS proxy). Pages on ALLOWED_HOSTS always are;
# clients that send no Origin (MCP clients, scripts) are not browsers and are not refused.
EXAI_ALLOWED_ORIGINS = env_list("EXAI_ALLOWED_ORIGINS")
CSRF_TRUSTED_ORIGINS = EXAI_ALLOWED_ORIGINS

# HTTPS hardening, on by default whenever DEBUG is off (production sits behind TLS): secure
# cookies, redirect to https, HSTS. A DEBUG-off server on plain http sets EXAI_HTTPS=0.
EXAI_HTTPS = env_bool("EXAI_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = EXAI_HTTPS
SECURE_SSL_REDIRECT = EXAI_HTTPS and env_bool("EXAI_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("EXAI_HSTS_SECONDS", 365 * 24 * 3600, minimum=0) if EXAI_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("EXAI_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("EXAI_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and X-Forwarded-For, see EXAI_NUM_PROXIES).
if env_bool("EXAI_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before channels: its `runworker` (management/commands) is the one manage.py runs.
    "exai_site",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt",
    # Refresh tokens are single-use (rotation) and logout withdraws them: both need the blacklist.
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the docs page's JavaScript and CSS, served locally (no internet needed)
    "tools_app",
    "files_app",
    "errors_app",
    "metrics_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "exai_site.urls"
ASGI_APPLICATION = "exai_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
# Persistent connections: opening one per query cost more CPU than the rest of a tool call.
# Health checks replace a connection the database dropped before it is used again.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("EXAI_DB_CONN_MAX_AGE_S", 300, minimum=0), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the server's writers and readers overlap; the timeout rides out short write locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
# Every Redis key and channel of this deployment starts with it, so several can share one Redis.
EXAI_REDIS_PREFIX = env_str("EXAI_REDIS_PREFIX", "exai")
# Connections one server process opens to Redis, and how long a call waits for a free one.
EXAI_REDIS_MAX_CONNECTIONS = env_int("EXAI_REDIS_MAX_CONNECTIONS", 64, minimum=2)
EXAI_REDIS_POOL_TIMEOUT_S = env_float("EXAI_REDIS_POOL_TIMEOUT_S", 20.0, minimum=0.1)
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": EXAI_REDIS_PREFIX},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": EXAI_REDIS_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # Bounded per owner (a user, or an address): one user's flood evicts only its own entries.
    CACHES = {
        "default": {
            "BACKEND": "exai_site.cache.FairLocMemCache",
            "OPTIONS": {
                "MAX_ENTRIES": env_int("EXAI_CACHE_MAX_ENTRIES", 100_000, minimum=100),
                "MAX_PER_OWNER": env_int("EXAI_CACHE_MAX_PER_OWNER", 1_000, minimum=10),
            },
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"

# Uploaded file blobs (files_app). A different storage backend (S3, …) can replace "default".
MEDIA_ROOT = Path(env_str("EXAI_FILE_ROOT", str(BASE_DIR / "var" / "files")))
MEDIA_URL = "/files-not-served/"  # blobs are only ever served through /api/files/<id>/content/
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "exai_site.auth.RevocableJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "exai_site.api_errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "exai_site.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Per authenticated user and per anonymous address; the counts live in the cache (Redis
    # when configured, so the limits hold across processes). 429s carry Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["exai_site.throttling.UserRateThrottle", "exai_site.throttling.AnonRateThrottle"],
    # Proxies in front of the server whose X-Forwarded-For entries are trusted (0: the peer address).
    "NUM_PROXIES": env_int("EXAI_NUM_PROXIES", 0, minimum=0),
}
# REST requests per user, per anonymous address, and password logins per address (0: no limit).
EXAI_API_USER_RATE = env_rate("EXAI_API_USER_RATE", "1200/minute")
EXAI_API_ANON_RATE = env_rate("EXAI_API_ANON_RATE", "120/minute")
EXAI_LOGIN_RATE = env_rate("EXAI_LOGIN_RATE", "20/minute")

SPECTACULAR_SETTINGS = {
    "TITLE": "EXAI",
    "DESCRIPTION": "Gateway between AI coding assistants and model providers: tools, files, errors, metrics.",
    "VERSION": "1",
    # 3.1: its schemas are JSON Schema 2020-12, so clients (and our tests) can validate answers with them.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "exai_site.schema.add_common_error_responses",
        "tools_app.schema.add_tool_operations",
        "exai_site.schema.add_summaries",
    ],
}

SIMPLE_JWT = {
    # Short-lived access tokens; long-lived ones for MCP clients come from `issue_token` (revocable).
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("EXAI_ACCESS_TOKEN_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("EXAI_REFRESH_TOKEN_DAYS", 7, minimum=1)),
    # Each refresh returns a new refresh token and blacklists the old one: a stolen, already
    # used refresh token is worthless.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "SIGNING_KEY": SECRET_KEY,
}
# Open WebSockets check their token again (revoked? user deactivated?) at most this often.
EXAI_TOKEN_RECHECK_S = env_float("EXAI_TOKEN_RECHECK_S", 10.0, minimum=0.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # API keys, tokens and passwords are scrubbed from every record, whatever logged it.
    "filters": {
        "redact": {"()": "exai_site.log_filters.RedactSecrets"},
        # Provider SDKs dump request bodies (prompts, file contents) below WARNING.
        "sdk_bodies": {"()": "exai_site.log_filters.DropSdkChatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["sdk_bodies", "redact"]},
        # Every ERROR record becomes an error occurrence (errors_app), with recent lines as context.
        "errors": {"()": "errors_app.capture.ErrorCaptureHandler", "filters": ["sdk_bodies", "redact"]},
        "recent": {"()": "errors_app.capture.RecentLinesHandler", "filters": ["sdk_bodies", "redact"]},
    },
    "root": {"handlers": ["console", "errors", "recent"], "level": env_str("EXAI_LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # One handler for Django's messages too (its default adds a second in DEBUG).
        "django": {"handlers": ["console", "errors", "recent"], "level": "INFO", "propagate": False},
        # Quiet by default too (the handlers' sdk_bodies filter holds whatever level is set).
        # openai 3.x ships its HTTP stack as httpx2/httpcore2.
        **{name: {"level": "WARNING"} for name in ("openai", "httpx", "httpcore", "httpx2", "httpcore2", "zhipuai")},
        "daphne": {"level": "WARNING"},
    },
}

# --- Providers -------------------------------------------------------------
KIMI_API_KEY = env_str("KIMI_API_KEY")
KIMI_BASE_URL = env_str("KIMI_BASE_URL", "https://api.moonshot.ai/v1")
GLM_API_KEY = env_str("GLM_API_KEY")
GLM_BASE_URL = env_str("GLM_BASE_URL", "https://api.z.ai/api/paas/v4/")
LOCAL_BASE_URL = env_str("LOCAL_BASE_URL")
LOCAL_API_KEY = env_str("LOCAL_API_KEY", "not-needed")
LOCAL_MODELS = env_list("LOCAL_MODELS")

# A provider that says nothing this long (connect, first byte, or between two chunks) has
# failed. A steadily streaming answer is bounded only by the tool's deadline.
EXAI_KIMI_TIMEOUT_S = env_float("EXAI_KIMI_TIMEOUT_S", 25.0, minimum=0.1)
EXAI_GLM_TIMEOUT_S = env_float("EXAI_GLM_TIMEOUT_S", 30.0, minimum=0.1)
EXAI_LOCAL_TIMEOUT_S = env_float("EXAI_LOCAL_TIMEOUT_S", 60.0, minimum=0.1)
# Retries are the SDKs' own (429, 5xx, connection errors, with backoff).
EXAI_PROVIDER_MAX_RETRIES = env_int("EXAI_PROVIDER_MAX_RETRIES", 2, minimum=0)
EXAI_DEFAULT_MODEL = env_str("EXAI_DEFAULT_MODEL", "auto")
# The model catalogue follows each provider's GET /models, read again this often.
EXAI_MODEL_REFRESH_S = env_float("EXAI_MODEL_REFRESH_S", 3600.0, minimum=1.0)
# What the `kimi` / `glm` aliases (and `auto`) mean when the provider lists it; "" = by preference.
EXAI_KIMI_DEFAULT_MODEL = env_str("EXAI_KIMI_DEFAULT_MODEL")
EXAI_GLM_DEFAULT_MODEL = env_str("EXAI_GLM_DEFAULT_MODEL")
# The output budget (`max_tokens`) sent when a tool names none: reasoning and answer share it.
EXAI_MAX_OUTPUT_TOKENS = env_int("EXAI_MAX_OUTPUT_TOKENS", 32_768, minimum=256)
# A JSON file of model prices that adds to or replaces the defaults (tools_app/pricing.py).
EXAI_PRICES_FILE = env_str("EXAI_PRICES_FILE", "")
# How long a process keeps a user's budget (set in the admin) before reading it again, seconds.
EXAI_BUDGET_CACHE_S = env_float("EXAI_BUDGET_CACHE_S", 5.0, minimum=0.0)
# After a 429 a provider's concurrency halves, then grows back by one slot this often.
EXAI_RATE_LIMIT_RECOVERY_S = env_float("EXAI_RATE_LIMIT_RECOVERY_S", 10.0, minimum=0.1)

# --- Throttle and deadlines -----------------------------------------------
EXAI_MAX_CONCURRENCY = env_int("EXAI_MAX_CONCURRENCY", 24, minimum=1)
EXAI_KIMI_MAX_CONCURRENCY = env_int("EXAI_KIMI_MAX_CONCURRENCY", 6, minimum=1)
EXAI_GLM_MAX_CONCURRENCY = env_int("EXAI_GLM_MAX_CONCURRENCY", 4, minimum=1)
EXAI_LOCAL_MAX_CONCURRENCY = env_int("EXAI_LOCAL_MAX_CONCURRENCY", 4, minimum=1)
EXAI_QUEUE_TIMEOUT_S = env_float("EXAI_QUEUE_TIMEOUT_S", 60.0, minimum=0.0)
EXAI_LEASE_TTL_S = env_float("EXAI_LEASE_TTL_S", 30.0, minimum=1.0)
EXAI_USER_MAX_CONCURRENCY = env_int("EXAI_USER_MAX_CONCURRENCY", 8, minimum=1)
# The share of one provider's slots a single user may hold at once (at least one slot): a user's
# flood leaves the rest to everyone else.
EXAI_USER_PROVIDER_SHARE = env_float("EXAI_USER_PROVIDER_SHARE", 0.5, minimum=0.01)
# The deadline of a call that consults a model. It bounds a long answer (an expert's 20k tokens
# stream for minutes); it must exceed every provider timeout plus the longest slot wait, so a
# silent provider fails first with its own `timeout` (checked by exai.E004).
EXAI_TOOL_TIMEOUT_S = env_float("EXAI_TOOL_TIMEOUT_S", 900.0, minimum=1.0)
EXAI_HEARTBEAT_S = env_float("EXAI_HEARTBEAT_S", 4.0, minimum=0.05)
# MCP over HTTP: a tools/call stream's events are kept this long after the last one, so a client
# that lost the stream resumes it (GET /mcp with Last-Event-ID); the call goes on without a
# reader for the grace, then is cancelled; clients are told to wait EXAI_MCP_SSE_RETRY_MS first.
EXAI_MCP_STREAM_TTL_S = env_float("EXAI_MCP_STREAM_TTL_S", 900.0, minimum=1.0)
EXAI_MCP_RESUME_GRACE_S = env_float("EXAI_MCP_RESUME_GRACE_S", 30.0, minimum=0.0)
EXAI_MCP_SSE_RETRY_MS = env_int("EXAI_MCP_SSE_RETRY_MS", 1000, minimum=0)
# On SIGTERM: how long calls in flight may take to finish before they are cancelled.
EXAI_DRAIN_S = env_float("EXAI_DRAIN_S", 20.0, minimum=0.0)
# Off when something else owns the process's signals (tests, an embedding server).
EXAI_HANDLE_SIGTERM = env_bool("EXAI_HANDLE_SIGTERM", True)
# Streamed text is sent at most this often per call, joined, instead of one frame per token.
EXAI_STREAM_INTERVAL_MS = env_int("EXAI_STREAM_INTERVAL_MS", 20, minimum=0)

# --- Circuit breaker (per provider) ------------------------------------------
EXAI_CIRCUIT_WINDOW_S = env_float("EXAI_CIRCUIT_WINDOW_S", 60.0, minimum=1.0)
EXAI_CIRCUIT_MIN_CALLS = env_int("EXAI_CIRCUIT_MIN_CALLS", 5, minimum=2)
EXAI_CIRCUIT_FAILURE_RATIO = env_float("EXAI_CIRCUIT_FAILURE_RATIO", 0.5, minimum=0.0)
EXAI_CIRCUIT_COOLDOWN_S = env_float("EXAI_CIRCUIT_COOLDOWN_S", 5.0, minimum=0.0)

# --- Protocol limits -------------------------------------------------------
EXAI_MAX_FRAME_BYTES = env_int("EXAI_MAX_FRAME_BYTES", 16 * 1024 * 1024, minimum=1024)
# JSON bodies (POST /mcp, REST) may be as large as a frame; larger ones get 413 in the JSON error shape.
DATA_UPLOAD_MAX_MEMORY_SIZE = EXAI_MAX_FRAME_BYTES
# A WebSocket that has not authenticated within this is closed (4401); until it has, its frames
# may be this large at most (1009 beyond).
EXAI_HELLO_TIMEOUT_S = env_float("EXAI_HELLO_TIMEOUT_S", 15.0, minimum=0.1)
EXAI_PRE_AUTH_FRAME_BYTES = env_int("EXAI_PRE_AUTH_FRAME_BYTES", 64 * 1024, minimum=1024)
# Open WebSockets per client address, per user, and in all in one process (also never more than
# its file-descriptor limit leaves room for); the excess is closed with 4429.
EXAI_WS_MAX_PER_ADDRESS = env_int("EXAI_WS_MAX_PER_ADDRESS", 100, minimum=1)
EXAI_WS_MAX_PER_USER = env_int("EXAI_WS_MAX_PER_USER", 100, minimum=1)
EXAI_WS_MAX_SOCKETS = env_int("EXAI_WS_MAX_SOCKETS", 10_000, minimum=1)
EXAI_MAX_PROMPT_CHARS = env_int("EXAI_MAX_PROMPT_CHARS", 60_000, minimum=1)
# Every text field of a tool's arguments is bounded by EXAI_MAX_PROMPT_CHARS, all of them together by this.
EXAI_MAX_ARGUMENT_CHARS = env_int("EXAI_MAX_ARGUMENT_CHARS", 200_000, minimum=1)
EXAI_IDEMPOTENCY_TTL_S = env_int("EXAI_IDEMPOTENCY_TTL_S", 600, minimum=1)
# A call whose /ws socket drops runs on this long for the client to reconnect and resend its
# request_id (then it attaches, or gets the stored result); unclaimed, it is cancelled.
EXAI_RESUME_GRACE_S = env_float("EXAI_RESUME_GRACE_S", 120.0, minimum=0.0)

# --- Tools -------------------------------------------------------------------
# Which tools tools/list offers (lean < standard < full), plus or minus single tools by name;
# `version` and `listmodels` are always on. Fewer tools = less of the assistant's context.
EXAI_TOOL_PROFILE = env_str("EXAI_TOOL_PROFILE", "standard").lower()
if EXAI_TOOL_PROFILE not in ("lean", "standard", "full"):
    raise ImproperlyConfigured(f"EXAI_TOOL_PROFILE={EXAI_TOOL_PROFILE!r} is not one of lean, standard, full.")
EXAI_ENABLED_TOOLS = env_list("EXAI_ENABLED_TOOLS")
EXAI_DISABLED_TOOLS = env_list("EXAI_DISABLED_TOOLS")
# Replies longer than this (estimated tokens) are cut at a clean boundary; the rest is kept for
# `conversations` {"action": "rest"} (Claude Code refuses tool output over 25,000 tokens).
EXAI_MAX_RESPONSE_TOKENS = env_int("EXAI_MAX_RESPONSE_TOKENS", 20_000, minimum=100)
# Deadlines per kind of call: no provider call, a workflow step, and anything consulting a
# model (EXAI_TOOL_TIMEOUT_S above).
EXAI_SIMPLE_TIMEOUT_S = env_float("EXAI_SIMPLE_TIMEOUT_S", 30.0, minimum=1.0)
EXAI_WORKFLOW_TIMEOUT_S = env_float("EXAI_WORKFLOW_TIMEOUT_S", 60.0, minimum=1.0)
# Identical calls at temperature 0 are answered from the cache this long (0: never cached).
EXAI_CACHE_TTL_S = env_int("EXAI_CACHE_TTL_S", 3600, minimum=0)

# --- Rate limits (0: none) ---------------------------------------------------
# Tool calls one user may start per minute, every surface and server process together.
EXAI_USER_CALLS_PER_MIN = env_int("EXAI_USER_CALLS_PER_MIN", 600, minimum=0)
# Frames one WebSocket may send per second, in bursts of up to EXAI_WS_FRAME_BURST.
EXAI_WS_FRAMES_PER_S = env_int("EXAI_WS_FRAMES_PER_S", 50, minimum=0)
EXAI_WS_FRAME_BURST = env_int("EXAI_WS_FRAME_BURST", 200, minimum=1)

# --- Errors ------------------------------------------------------------------
# Occurrences are written in batches this long after the first one of a batch.
EXAI_ERROR_FLUSH_S = env_float("EXAI_ERROR_FLUSH_S", 0.5, minimum=0.0)
# Investigate an error once it has occurred this many times (a regression always is).
EXAI_INVESTIGATE_AFTER = env_int("EXAI_INVESTIGATE_AFTER", 1, minimum=1)
EXAI_INVESTIGATOR_MODEL = env_str("EXAI_INVESTIGATOR_MODEL", "auto")
# Escalating: this hour's occurrences above FACTOR x the hourly average plus MIN.
EXAI_ESCALATION_FACTOR = env_float("EXAI_ESCALATION_FACTOR", 5.0, minimum=1.0)
EXAI_ESCALATION_MIN = env_int("EXAI_ESCALATION_MIN", 20, minimum=1)

# --- Files -----------------------------------------------------------------
_MIB = 1024 * 1024
# Uploads over this are refused with 413 before their body is read.
EXAI_MAX_UPLOAD_BYTES = env_int("EXAI_MAX_UPLOAD_MB", 100, minimum=1) * _MIB
# UTF-8 text files up to this size go into the prompt as they are; larger ones (and binary
# files) are uploaded to the provider, whose extracted text goes into the prompt.
EXAI_EMBED_MAX_BYTES = env_int("EXAI_EMBED_MAX_KB", 50, minimum=0) * 1024
# What each provider's files API takes (Moonshot: 100 MB, Z.ai: 20 MB).
EXAI_KIMI_MAX_FILE_BYTES = env_int("EXAI_KIMI_MAX_FILE_MB", 100, minimum=1) * _MIB
EXAI_GLM_MAX_FILE_BYTES = env_int("EXAI_GLM_MAX_FILE_MB", 20, minimum=1) * _MIB
# Provider file operations (upload, content, delete) take longer than a chat turn may.
EXAI_FILE_TIMEOUT_S = env_float("EXAI_FILE_TIMEOUT_S", 90.0, minimum=1.0)
# Local single-user setups: absolute paths under these directories may stand for files in
# `files` / `relevant_files` (symlinks are followed before the check). Unset: file ids only.
EXAI_ALLOWED_FILE_ROOTS = [Path(root).expanduser().resolve() for root in env_list("EXAI_ALLOWED_FILE_ROOTS")]
# Unreferenced blobs are kept this long (a re-upload meanwhile costs nothing) before cleanup_files removes them.
EXAI_FILE_GRACE_HOURS = env_float("EXAI_FILE_GRACE_HOURS", 24.0, minimum=0.0)

# --- Metrics -----------------------------------------------------------------
# Latency samples are written in batches this often (and at once when a batch is full).
EXAI_METRICS_FLUSH_S = env_float("EXAI_METRICS_FLUSH_S", 0.5, minimum=0.01)
EXAI_METRICS_BATCH = env_int("EXAI_METRICS_BATCH", 1000, minimum=1)
# Samples held while the database is away, written when it returns (the oldest dropped past this).
EXAI_METRICS_BACKLOG = env_int("EXAI_METRICS_BACKLOG", 100_000, minimum=1)
# How often an open dashboard gets a fresh snapshot.
EXAI_DASHBOARD_INTERVAL_S = env_float("EXAI_DASHBOARD_INTERVAL_S", 2.0, minimum=0.1)
# Minute and hour rollups of the latency samples (metrics_app/rollups.py) outlive the raw
# samples: `cleanup_metrics` deletes rollups older than this. At least 2: the sliding day
# subtracts the minutes that leave it.
EXAI_ROLLUP_RETENTION_DAYS = env_float("EXAI_ROLLUP_RETENTION_DAYS", 90.0, minimum=2.0)

# --- Conversations ---------------------------------------------------------
EXAI_MAX_CONVERSATION_TURNS = env_int("EXAI_MAX_CONVERSATION_TURNS", 20, minimum=1)
EXAI_CONVERSATION_TTL_HOURS = env_float("EXAI_CONVERSATION_TTL_HOURS", 3.0, minimum=0.01)
# Workflow steps one thread keeps, all runs together.
EXAI_MAX_THREAD_STEPS = env_int("EXAI_MAX_THREAD_STEPS", 100, minimum=1)
# Each server process deletes expired threads this often (0: never; run `cleanup_conversations` instead).
EXAI_THREAD_PURGE_INTERVAL_S = env_float("EXAI_THREAD_PURGE_INTERVAL_S", 600.0, minimum=0.0)
# How long an answered turn waits for others to share its write (tools_app/turns.py); 0: at once.
EXAI_TURN_FLUSH_MS = env_float("EXAI_TURN_FLUSH_MS", 20.0, minimum=0.0)
