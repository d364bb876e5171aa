"""Settings for sde: one module, driven by the environment.

With no environment at all this is a working development setup: a SQLite file, an
embedded (filesystem) Celery broker and development keys generated under ``var/``.
``SDE_ENV=production`` turns every embedded default into a hard requirement, so a
production deployment fails at start-up with a clear message instead of running on
development keys. ``dotenv-sample`` lists every variable.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def _required(name: str) -> str:
    value = _env(name)
    if value is None:
        raise ImproperlyConfigured(
            f"{name} must be set when SDE_ENV=production (see dotenv-sample)."
        )
    return value


SDE_ENV = _env("SDE_ENV", "development")
if SDE_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"SDE_ENV must be 'development' or 'production', got {SDE_ENV!r}")
PRODUCTION = SDE_ENV == "production"

VAR_DIR = Path(_env("SDE_VAR_DIR", str(BASE_DIR / "var")))  # type: ignore[arg-type]
SDE_DATA_ROOT = Path(_env("SDE_DATA_ROOT", str(VAR_DIR / "data")))  # type: ignore[arg-type]
# Development keys live here (0600 files, git-ignored); production keys come from the
# environment and this directory is not used for them.
SDE_KEY_DIR = Path(_env("SDE_KEY_DIR", str(VAR_DIR / "keys")))  # type: ignore[arg-type]

DEBUG = _env_bool("SDE_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("SDE_DEBUG cannot be on when SDE_ENV=production.")

# Demo mode eases logging in to the demo (it shows the demo accounts and their current
# MFA codes). It is refused whenever DEBUG is off, so it cannot reach a real deployment.
SDE_DEMO_MODE = _env_bool("SDE_DEMO_MODE", False)
if SDE_DEMO_MODE and not DEBUG:
    raise ImproperlyConfigured("SDE_DEMO_MODE is refused when DEBUG is off.")


def _development_secret_key() -> str:
    path = SDE_KEY_DIR / "django-secret-key"
    if not path.exists():
        SDE_KEY_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = (
    _required("DJANGO_SECRET_KEY")
    if PRODUCTION
    else (_env("DJANGO_SECRET_KEY") or _development_secret_key())
)
ALLOWED_HOSTS = [
    host.strip()
    for host in (
        _required("SDE_ALLOWED_HOSTS")
        if PRODUCTION
        else _env("SDE_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
    ).split(",")  # type: ignore[union-attr]
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in (_env("SDE_CSRF_TRUSTED_ORIGINS", "") or "").split(",")
    if origin.strip()
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "guardian",
    "rest_framework",
    "drf_spectacular",
    "sde",
    "access_requests",
    "outputs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "sde.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "sde.middleware.IdleSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "sde.middleware.RequireMFAMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sde.urls"
WSGI_APPLICATION = "sde.wsgi.application"

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
                "sde.context_processors.sde",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------
_database_url = _required("DATABASE_URL") if PRODUCTION else _env("DATABASE_URL")
if _database_url:
    # Connections are kept for a minute; each is checked before reuse, so that after a
    # database restart a request gets a new one instead of an error page.
    DATABASES = {
        "default": dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
    }
    DATABASES["default"].setdefault("TEST", {})
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _env("SDE_SQLITE_PATH") or str(VAR_DIR / "sde.sqlite3"),
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so the web process and the
                # worker serialise their writes instead of failing mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file (not :memory:) so a real worker process can share the test database.
            "TEST": {"NAME": str(VAR_DIR / "test-sde.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Identity and authentication -------------------------------------------------------
AUTH_USER_MODEL = "sde.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
SDE_LOCKOUT_THRESHOLD = _env_int("SDE_LOCKOUT_THRESHOLD", 5)
SDE_LOCKOUT_MINUTES = _env_int("SDE_LOCKOUT_MINUTES", 15)
OTP_TOTP_ISSUER = _env("SDE_OTP_ISSUER", "sde")
OTP_TOTP_THROTTLE_FACTOR = 1
SDE_RECOVERY_CODE_COUNT = 10
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; the public gets no object perms

# --- Sessions, cookies and headers -----------------------------------------------------
SDE_SESSION_IDLE_MINUTES = _env_int("SDE_SESSION_IDLE_MINUTES", 30)
SESSION_COOKIE_AGE = SDE_SESSION_IDLE_MINUTES * 60
# An idle timeout: a request pushes the expiry on, saving the session at most once a
# refresh interval (sde.middleware.IdleSessionMiddleware), not on every request.
SDE_SESSION_REFRESH_SECONDS = 60
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
_secure = not DEBUG
SESSION_COOKIE_SECURE = _secure
CSRF_COOKIE_SECURE = _secure
SECURE_SSL_REDIRECT = _env_bool("SDE_SSL_REDIRECT", _secure)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
SECURE_HSTS_SECONDS = 31536000 if _secure else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _secure
SECURE_HSTS_PRELOAD = _secure
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SDE_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# --- Static files ----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it, even when empty
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# In development the app folders are served as they are, looked up per request, as
# whitenoise does by default under DEBUG. Said here rather than left to that default,
# which reads DEBUG when the middleware starts: under the tests (DEBUG off, pytest-django)
# it would scan every static file again for each new test client.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = False
USE_TZ = True

# --- Celery ----------------------------------------------------------------------------
# The embedded default is kombu's filesystem transport: a real broker between processes
# on one host, needing no server. Production points this at Redis.
CELERY_BROKER_URL = (
    _required("CELERY_BROKER_URL") if PRODUCTION else _env("CELERY_BROKER_URL", "filesystem://")
)
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        # Fanout tables (remote control: inspect, ping). kombu's default is ./control,
        # relative to whatever directory the process started in.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True  # pages show database state, never a Celery result
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a killed worker's task goes back on the queue
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 3600
CELERY_TASK_SOFT_TIME_LIMIT = 3300
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "verify-audit-chain": {
        "task": "sde.tasks.verify_audit_task",
        "schedule": timedelta(minutes=_env_int("SDE_AUDIT_VERIFY_MINUTES", 60)),
    },
    "sign-audit-checkpoint": {
        "task": "sde.tasks.sign_audit_checkpoint_task",
        "schedule": timedelta(minutes=_env_int("SDE_AUDIT_CHECKPOINT_MINUTES", 15)),
    },
    # Expiry, lapses and reminders. Access checks the dates at each use anyway; this
    # records the change, revokes permissions and sends the reminders.
    "project-compliance": {
        "task": "sde.tasks.project_compliance_task",
        "schedule": timedelta(minutes=_env_int("SDE_COMPLIANCE_MINUTES", 60)),
    },
    # Jobs a stopped worker left running, and queued jobs a broker outage left unsent.
    "sweep-jobs": {
        "task": "sde.tasks.sweep_jobs_task",
        "schedule": timedelta(seconds=_env_int("SDE_JOB_SWEEP_SECONDS", 60)),
    },
    # Re-identified lists past their time (deleted), and approved requests a broker outage
    # left unsent.
    "sweep-reidentification": {
        "task": "sde.tasks.sweep_reidentification_task",
        "schedule": timedelta(seconds=_env_int("SDE_REID_SWEEP_SECONDS", 300)),
    },
}
# Direct care: how many days a re-identified list stays available to its clinician.
SDE_REID_LIST_DAYS = _env_int("SDE_REID_LIST_DAYS", 7)
# Analysis jobs in the sandbox: limits per job, and how stopped workers are detected.
SDE_JOB_CPU_SECONDS = _env_int("SDE_JOB_CPU_SECONDS", 900)
SDE_JOB_WALL_SECONDS = _env_int("SDE_JOB_WALL_SECONDS", 1800)
SDE_JOB_MEMORY_BYTES = _env_int("SDE_JOB_MEMORY_BYTES", 4 * 1024**3)
SDE_JOB_PROCESSES = _env_int("SDE_JOB_PROCESSES", 64)
SDE_JOB_OUTPUT_BYTES = _env_int("SDE_JOB_OUTPUT_BYTES", 512 * 1024**2)
SDE_JOB_MAX_OUTPUT_FILES = _env_int("SDE_JOB_MAX_OUTPUT_FILES", 200)
SDE_JOB_HEARTBEAT_TIMEOUT = _env_int("SDE_JOB_HEARTBEAT_TIMEOUT", 120)
SDE_JOB_MAX_ATTEMPTS = _env_int("SDE_JOB_MAX_ATTEMPTS", 2)
SDE_JOB_RESEND_SECONDS = _env_int("SDE_JOB_RESEND_SECONDS", 300)
# Access requests: independent IG approvals needed, and whether a reviewer may not belong
# to any of the applying organisations (as well as not applying or being on the team).
SDE_APPROVAL_QUORUM = max(1, _env_int("SDE_APPROVAL_QUORUM", 2))
SDE_REVIEW_EXCLUDES_APPLICANT_ORGANISATIONS = _env_bool(
    "SDE_REVIEW_EXCLUDES_APPLICANT_ORGANISATIONS", True
)
# Days a submitted request may wait for a decision before the queue shows it as overdue.
SDE_REVIEW_SLA_DAYS = _env_int("SDE_REVIEW_SLA_DAYS", 20)
# Application attachments (DPIA, protocol, letters) live outside the database.
SDE_ATTACHMENT_ROOT = Path(_env("SDE_ATTACHMENT_ROOT", str(VAR_DIR / "attachments")))  # type: ignore[arg-type]
SDE_MAX_ATTACHMENT_BYTES = _env_int("SDE_MAX_ATTACHMENT_BYTES", 20 * 1024**2)
# Days before an end, s251, REC or DSPT date when members and IG are reminded.
SDE_REMINDER_DAYS = tuple(
    int(d) for d in os.environ.get("SDE_REMINDER_DAYS", "30,7").split(",") if d.strip()
)

# --- Uploads -------------------------------------------------------------------------
# A drop's files stream to disk (never held in memory); each file is capped.
SDE_MAX_UPLOAD_BYTES = _env_int("SDE_MAX_UPLOAD_BYTES", 2 * 1024**3)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2
DATA_UPLOAD_MAX_NUMBER_FILES = 20

# --- Audit -----------------------------------------------------------------------------
SDE_AUDIT_CHECKPOINT_EVERY = _env_int("SDE_AUDIT_CHECKPOINT_EVERY", 1000)
# Production: base64 of the raw 32-byte Ed25519 private key. Development: generated file.
SDE_AUDIT_SIGNING_KEY = (
    _required("SDE_AUDIT_SIGNING_KEY") if PRODUCTION else _env("SDE_AUDIT_SIGNING_KEY")
)

# --- Pseudonymisation and identity vault keys (sde.keys.keyring) ------------------------
# Production: "1:<base64 of 32 bytes>,2:<base64>", the highest version current; rotate by
# appending a version. Development: versioned JSON keyring files under SDE_KEY_DIR.
SDE_SYSTEM_KEYS = _required("SDE_SYSTEM_KEYS") if PRODUCTION else _env("SDE_SYSTEM_KEYS")
SDE_MASTER_KEYS = _required("SDE_MASTER_KEYS") if PRODUCTION else _env("SDE_MASTER_KEYS")
SDE_VAULT_KEYS = _required("SDE_VAULT_KEYS") if PRODUCTION else _env("SDE_VAULT_KEYS")

# --- API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its "Bearer" challenge makes unauthenticated calls answer 401.
        "sde.api.authentication.HashedTokenAuthentication",
        "sde.api.authentication.MFASessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "sde.api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "sde.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "sde API",
    "DESCRIPTION": "Secure Data Environment: everything the pages do.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # One name for the role choices wherever they appear (a role, a list of roles).
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "sde.identity.roles.Role"},
}
SDE_API_TOKEN_DAYS = _env_int("SDE_API_TOKEN_DAYS", 30)

# --- Email -----------------------------------------------------------------------------
EMAIL_BACKEND = _env("SDE_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = _env("SDE_EMAIL_HOST", "localhost")
EMAIL_PORT = _env_int("SDE_EMAIL_PORT", 25)
EMAIL_HOST_USER = _env("SDE_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _env("SDE_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("SDE_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = _env("SDE_DEFAULT_FROM_EMAIL", "sde@localhost")

# --- Logging: metadata only, never row-level data ---------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _env("SDE_LOG_LEVEL", "INFO")},
}
