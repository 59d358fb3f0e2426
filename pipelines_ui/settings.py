"""Settings for Pipelines UI, read from the environment.

With nothing set the product runs embedded: SQLite (WAL) for the database, the Valkey that
`manage.py up` starts on a Unix socket for the broker, the channel layer and the rate limits,
and a file:// datastore, all under var/. Set DATABASE_URL, CELERY_BROKER_URL, REDIS_URL and
DATASTORE_URL for PostgreSQL, Redis and a shared datastore. Production: DEBUG=0, HTTPS=1,
SECRET_KEY and ALLOWED_HOSTS.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from runner.broker import celery_config, embedded_redis_url, var_dir


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def filestr(path: Path) -> str:
    """The file's text, stripped; empty when there is no such file."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir()

DEBUG = envbool("DEBUG", False)
# From the environment, else the key `manage.py up` writes to var/ on its first start (a key
# known to all would let anyone forge what it signs: sessions' hashes, step tokens). The default
# is for tests and one-off commands; `check --deploy` flags it (W009).
SECRET_KEY_FILE = VAR_DIR / "secret.key"
SECRET_KEY = (envstr("SECRET_KEY") or filestr(SECRET_KEY_FILE)
              or "django-insecure-embedded-default-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
# Workspace secrets are encrypted at rest with these Fernet keys, comma-separated, newest first
# (S17; pipelines_ui/secrets/keys.py): from the environment, else from the file that
# `manage.py up` writes on its first start. `check --deploy` flags a missing key.
PIPELINES_SECRETS_KEY_FILE = VAR_DIR / "secrets.key"
PIPELINES_SECRETS_KEY = envstr("PIPELINES_SECRETS_KEY") or filestr(PIPELINES_SECRETS_KEY_FILE)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "pipelines_ui",
    "pipelines_ui.accounts",
    "pipelines_ui.pipelines",
    "pipelines_ui.runs",
    "pipelines_ui.compute",
    "pipelines_ui.data",
    "pipelines_ui.secrets",
    "pipelines_ui.registry",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pipelines_ui.urls"
ASGI_APPLICATION = "pipelines_ui.asgi.application"

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
                "pipelines_ui.accounts.context_processors.workspaces",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers serialize instead of
                # failing on upgrade; it is what stands in for row locks on SQLite (R10).
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "CONN_MAX_AGE": 60,  # one connection per server thread, not one per request
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
        }
    }
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "pipelines_ui.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# HTTP requests run on this many threads of the ASGI server (asgi.py); each keeps a database
# connection, so a PostgreSQL server must allow this many per server process.
HTTP_THREADS = envint("PIPELINES_HTTP_THREADS", 16)

# Request bodies: specs are limited separately (PIPELINES_MAX_SPEC_BYTES); this is the outer cap.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# Channels and the trigger limits: Redis, or the embedded Valkey when REDIS_URL is not set.
REDIS_URL = envstr("REDIS_URL") or embedded_redis_url(VAR_DIR)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # A socket waits up to 5 s per blocking read for its next event; redis-py's own 5 s
        # read timeout would end it first, and an idle run page would reconnect every 5 s.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 1000,
                   "expiry": 60},
    }
}

# Celery: the control worker's app reads these (namespace CELERY_).
_celery = celery_config(envstr("CELERY_BROKER_URL") or None)
CELERY_BROKER_URL = _celery["broker_url"]
CELERY_BROKER_TRANSPORT_OPTIONS = _celery["broker_transport_options"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# The run engine (T and Q of docs/reliability.md): a running step whose heartbeats stop for
# STEP_LOST_AFTER_S is lost; a queued step that no worker took within STEP_QUEUED_TIMEOUT_S
# is sent again.
PIPELINES_SERVER_URL = envstr("PIPELINES_SERVER_URL", "http://127.0.0.1:8000")
DATASTORE_URL = envstr("DATASTORE_URL", (VAR_DIR / "datastore").as_uri())
STEP_HEARTBEAT_S = float(envstr("STEP_HEARTBEAT_S", "2"))
STEP_LOST_AFTER_S = envint("STEP_LOST_AFTER_S", 30)
STEP_QUEUED_TIMEOUT_S = envint("STEP_QUEUED_TIMEOUT_S", 300)
STEP_CANCEL_TIMEOUT_S = envint("STEP_CANCEL_TIMEOUT_S", 30)
WORKER_LOST_AFTER_S = envint("WORKER_LOST_AFTER_S", 30)
RECONCILE_EVERY_S = envint("RECONCILE_EVERY_S", 5)
PIPELINES_MAX_SPEC_BYTES = envint("PIPELINES_MAX_SPEC_BYTES", 1_000_000)
# Run triggers (S9): per minute per token (or signed-in user), per minute per endpoint or
# pipeline, and runs not finished per endpoint or pipeline. Counted in Redis when REDIS_URL is set.
PIPELINES_TRIGGER_RATE = envint("PIPELINES_TRIGGER_RATE", 120)
PIPELINES_TARGET_TRIGGER_RATE = envint("PIPELINES_TARGET_TRIGGER_RATE", 600)
PIPELINES_MAX_ACTIVE_RUNS = envint("PIPELINES_MAX_ACTIVE_RUNS", 100)
# Failed sign-ins (S18): past this many in the window for one username, or for one client
# address, that username or address may not sign in until the oldest failure leaves the window.
SIGN_IN_FAILURES_PER_USERNAME = envint("SIGN_IN_FAILURES_PER_USERNAME", 5)
SIGN_IN_FAILURES_PER_ADDRESS = envint("SIGN_IN_FAILURES_PER_ADDRESS", 20)
SIGN_IN_FAILURE_WINDOW_S = envint("SIGN_IN_FAILURE_WINDOW_S", 900)
# Uploaded source snapshots (POST /api/artifacts/): the archive and what it unpacks to.
PIPELINES_MAX_UPLOAD_BYTES = envint("PIPELINES_MAX_UPLOAD_BYTES", 100_000_000)

REST_FRAMEWORK = {
    # Token first: it names the scheme in WWW-Authenticate, so a missing credential is a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pipelines_ui.accounts.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        # Last: a worker's StepToken or WorkerKey on any other route is a 403 (S5).
        "pipelines_ui.runs.worker_auth.WorkerCredentialAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["pipelines_ui.api_base.WorkspaceAccess"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bounded in size and in depth: no body can crash a view (S9, S12).
    "DEFAULT_PARSER_CLASSES": ["pipelines_ui.json_body.JSONBodyParser"],
    "DEFAULT_SCHEMA_CLASS": "pipelines_ui.api_schema.ApiSchema",
    "DEFAULT_PAGINATION_CLASS": "pipelines_ui.api_base.Pagination",
    "EXCEPTION_HANDLER": "pipelines_ui.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pipelines UI API",
    "DESCRIPTION": (
        "Design, run and publish ML pipelines. Authenticate with a browser session (plus the "
        "CSRF token) or with `Authorization: Token pui_<prefix>_<secret>`. Every error body is "
        '`{"detail": "...", "errors": [{"node", "field", "message"}]}`.'
    ),
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # Public: the schema holds no data, and integrators read it before they have a token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
}

# Served over HTTPS (directly or behind a proxy that sets X-Forwarded-Proto).
HTTPS = envbool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (S18): scripts only from our own origin, none
# inline (a page's data travels in json_script blocks, which do not run). 'self' in
# connect-src covers the page's own ws:/wss: origin (CSP Level 3). Styles may be inline:
# plotly and Swagger UI set style attributes and add <style> elements at run time.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "connect-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],  # plotly's PNG/SVG exports
        "style-src": ["'self'", "'unsafe-inline'"],
    },
}

# Credentials never reach logs or error reports, URL passwords included (S7).
DEFAULT_EXCEPTION_REPORTER_FILTER = "pipelines_ui.redaction.SafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "pipelines_ui.redaction.ExceptionReporter"
ADMINS = [("Admin", address) for address in envlist("ADMINS", [])]  # mailed on a 500
SERVER_EMAIL = envstr("SERVER_EMAIL", "root@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "redact": {"()": "pipelines_ui.redaction.RedactingFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain",
                    "filters": ["redact"]},
        "mail_admins": {"class": "django.utils.log.AdminEmailHandler", "level": "ERROR",
                        "filters": ["require_debug_false", "redact"]},
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's own console handler is replaced by the root's; its mail by the one above.
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
    },
}

CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "pipelines_ui.runs.reconcile", "schedule": RECONCILE_EVERY_S,
                  "options": {"queue": "control", "expires": RECONCILE_EVERY_S}},
}
