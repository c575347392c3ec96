"""Settings, read from the environment in this one place (names listed in .env.example)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static

from crm_project.production import production_problems

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- core -------------------------------------------------------------------------------------------
# development (`make run`, the tests: the default) | production (docker compose, .env.example). An empty
# variable counts as unset, so a copy of .env.example with blanks still runs `make run`.
APP_ENV = env("APP_ENV") or "development"
if APP_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"APP_ENV must be development or production, not {APP_ENV!r}.")
PRODUCTION = APP_ENV == "production"
# Development's well-known key; production has no default and refuses weak keys (crm_project/production.py).
DEFAULT_SECRET_KEY = "dev-insecure-change-me"
SECRET_KEY = env("SECRET_KEY") or ("" if PRODUCTION else DEFAULT_SECRET_KEY)
DEBUG = env_bool("DEBUG", not PRODUCTION)
# Production must list its hosts: the public host and the tenants' (".crm.example.com" covers every
# sub-domain); development serves any host (*.localhost).
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or ([] if PRODUCTION else ["*"])
APP_URL = (env("APP_URL") or "http://localhost:8012").rstrip("/")
APP_URL_PARTS = urlsplit(APP_URL)
# The bare host of APP_URL is the public (operators') host; tenants live on sub-domains of it.
PUBLIC_DOMAIN = env("PUBLIC_DOMAIN") or APP_URL_PARTS.hostname or "localhost"

# --- apps (django-tenants: shared apps live in public, tenant apps in each tenant's schema) ---------
SHARED_APPS = [
    "django_tenants",
    "core",
    "tenancy",
    "events",
    # Public tables of AI assistance (when each sent campaign's 24-hour summary is due).
    "assist",
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "corsheaders",
    "anymail",
]
# Users, sessions, admin log and API tokens exist per tenant: a token or session of one tenant
# is meaningless on another tenant's host.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "rest_framework.authtoken",
    "core",  # beside the tokens: their last use (core.models.TokenUse)
    "customers",
    "segments",
    "campaigns",
    "flows",
    "tracking",
    # Sign-in with Google / OpenID Connect: social accounts live with the users, per tenant.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "signin",
]
# crm_project first: its `migrate` (skips up-to-date tenants) overrides django-tenants' own.
INSTALLED_APPS = ["crm_project"] + list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenancy.Tenant"
TENANT_DOMAIN_MODEL = "tenancy.Domain"
TENANT_TEMPLATE_SCHEMA = "tenant_template"
TENANT_LIMIT_SET_CALLS = True
# Paths that answer an image whatever happens (open pixels), even with the database down.
ALWAYS_AN_IMAGE_PATHS = ["/t/o/"]
# What a deactivated tenant's hosts still serve (everything else answers 410): its recipients'
# unsubscribe links (page, form and RFC 8058 one-click POST) and preference centre. Open pixels there
# get their image, recorded nowhere.
DEACTIVATED_TENANT_PATHS = ["/u/", "/p/"]
PUBLIC_SCHEMA_URLCONF = "crm_project.urls_public"
ROOT_URLCONF = "crm_project.urls"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

MIDDLEWARE = [
    # The open pixel and the click redirect answer here, before the rest (tracking/middleware.py).
    "tracking.middleware.TrackingLinksMiddleware",
    "tenancy.middleware.TenantMiddleware",
    "tenancy.middleware.TenantTimeZoneMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "signin.middleware.SsoRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.StatementTimeoutMiddleware",
    "core.middleware.ApiBodySizeLimitMiddleware",
    "core.middleware.AdminLoginThrottleMiddleware",
]

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
                "tenancy.context_processors.tenant",
            ],
        },
    },
]

WSGI_APPLICATION = "crm_project.wsgi.application"

# --- database ------------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        engine="django_tenants.postgresql_backend",
        conn_max_age=int(env("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# PostgreSQL's JIT compiles any statement whose estimated cost passes jit_above_cost, for 50-150 ms. Our
# statements are short; a stale estimate (a table grown in a burst, not analysed yet) made the flow
# dispatcher's 2 ms claim take 130 ms. Off for the service's connections unless DB_JIT=on.
if env("DB_JIT", "off") != "on":
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options["options"] = f"{_db_options.get('options', '')} -c jit=off".strip()
# Statement timeouts (core/db.py): a web request's statements get DB_STATEMENT_TIMEOUT_MS (then 503, or
# 400 where the input is to blame); Celery workers and management commands get the longer
# DB_WORKER_STATEMENT_TIMEOUT_MS (0: none beyond the server's own).
DB_STATEMENT_TIMEOUT_MS = int(env("DB_STATEMENT_TIMEOUT_MS", "15000"))
DB_WORKER_STATEMENT_TIMEOUT_MS = int(env("DB_WORKER_STATEMENT_TIMEOUT_MS", "1800000"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (Redis when configured; every key carries the tenant's schema) -------------------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.FailSoftRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        }
    }

# --- auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The clock a new tenant starts with (each tenant sets its own in its settings).
TENANT_DEFAULT_TIME_ZONE = env("TENANT_DEFAULT_TIME_ZONE", "UTC")
# The currency the admin shows customers' lifetime values in (a tenant may set its own).
TENANT_DEFAULT_CURRENCY = env("TENANT_DEFAULT_CURRENCY", "HUF")
USE_I18N = True
FORMAT_MODULE_PATH = ["crm_project.formats"]
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(5 * 1024 * 1024)))
API_MAX_BODY_BYTES = int(env("API_MAX_BODY_BYTES", str(5 * 1024 * 1024)))
# Failed logins (token endpoint and admin login alike, core/throttling.py), within a sliding window:
# per account and client, per client over all accounts, per account over all clients that have not
# signed in to it within LOGIN_KNOWN_CLIENT_DAYS. Over a limit: 429 with Retry-After.
LOGIN_FAILURE_WINDOW_SECONDS = int(env("LOGIN_FAILURE_WINDOW_SECONDS", "900"))
LOGIN_MAX_FAILURES = int(env("LOGIN_MAX_FAILURES", "10"))
LOGIN_MAX_FAILURES_PER_CLIENT = int(env("LOGIN_MAX_FAILURES_PER_CLIENT", "30"))
LOGIN_MAX_FAILURES_PER_ACCOUNT = int(env("LOGIN_MAX_FAILURES_PER_ACCOUNT", "50"))
LOGIN_KNOWN_CLIENT_DAYS = int(env("LOGIN_KNOWN_CLIENT_DAYS", "30"))
# The proxies in front of the service (core/clients.py): empty (clients connect directly; forwarded
# headers are ignored), a count of proxy hops (`1` behind one load balancer), or comma-separated
# networks (`10.0.0.0/8,192.168.0.10`). Only then is X-Forwarded-For read, right to left.
TRUSTED_PROXIES = env("TRUSTED_PROXIES", "")
# API tokens die after this many days without use (and with their user's deactivation or new password).
API_TOKEN_TTL_DAYS = int(env("API_TOKEN_TTL_DAYS", "90"))
LOGIN_URL = "admin:login"
# Signing in with Google and a tenant's OpenID Connect provider (signin/, django-allauth). The
# providers are each tenant's own settings; these only shape allauth's flow.
ACCOUNT_ADAPTER = "signin.adapter.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "signin.adapter.SocialAccountAdapter"
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = int(env("SSO_REQUESTS_TIMEOUT", "10"))
LOGIN_REDIRECT_URL = "/admin/"
# allauth reads client addresses (its own rate limits) behind the same proxies as core/clients.py.
ALLAUTH_TRUSTED_PROXY_COUNT = int(TRUSTED_PROXIES) if TRUSTED_PROXIES.strip().isdigit() else 0
# Google's OpenID Connect issuer (tests point it at a provider of their own).
SSO_GOOGLE_ISSUER = env("SSO_GOOGLE_ISSUER", "https://accounts.google.com")
# Fernet keys (comma-separated, newest first) for secrets stored in the database (a tenant's OIDC
# client secrets); empty derives one from SECRET_KEY (core/secrets.py).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "")

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.tokens.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view needs the Django model permission of what it does (core/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.ModelPermissions"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.SafeJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # DRF's own scopes, unused (login failures have their own limits: core/throttling.py).
        "anon": None,
        "user": None,
        # The AI endpoints, per user: each may call a paid provider.
        "ai": env("AI_RATE", "30/min"),
    },
    # DRF's own throttles (get_ident) read X-Forwarded-For only as far as TRUSTED_PROXIES allows;
    # ours use core.clients.client_address, which also understands networks.
    "NUM_PROXIES": int(TRUSTED_PROXIES) if TRUSTED_PROXIES.strip().isdigit() else 0,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM and email-campaign API",
    "DESCRIPTION": "Customers, segments, templates, campaigns and their statistics, per tenant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "ENUM_NAME_OVERRIDES": {
        "AddressKindEnum": "customers.models.Address.KIND_CHOICES",
        "OrderStatusEnum": "customers.models.Order.STATUS_CHOICES",
        "InteractionKindEnum": "customers.models.Interaction.KIND_CHOICES",
        "NoteKindEnum": "customers.serializers.NOTE_KIND_CHOICES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.document_common_responses",
    ],
}
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", "")
CORS_URLS_REGEX = r"^/api/.*$"

# --- Celery (tenant-aware; broker Redis) ----------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TENANT_CACHE_SECONDS = 30
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "crm")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"

# --- segments -------------------------------------------------------------------------------------
# How long a segment's customer count is cached (per tenant); `?refresh=true` recomputes it.
SEGMENT_COUNT_CACHE_SECONDS = int(env("SEGMENT_COUNT_CACHE_SECONDS", "60"))

# --- AI assistance (assist/) ----------------------------------------------------------------------
# offline: answers from the service itself only. openai: any OpenAI-compatible chat endpoint (OpenAI,
# Gemini's compatible endpoint, Ollama, vLLM, a LiteLLM proxy), with the offline answer as fallback.
AI_PROVIDER = env("AI_PROVIDER", "offline")
AI_BASE_URL = env("AI_BASE_URL", "https://api.openai.com/v1")
AI_API_KEY = env("AI_API_KEY", "")
AI_MODEL = env("AI_MODEL", "gpt-4o-mini")
AI_TIMEOUT_SECONDS = float(env("AI_TIMEOUT_SECONDS", "10"))

# --- events (RabbitMQ) ----------------------------------------------------------------------------
EVENTS_BROKER_URL = env("EVENTS_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
EVENTS_EXCHANGE = env("EVENTS_EXCHANGE", "crm.events")
EVENTS_BROKER_CONNECT_TIMEOUT = float(env("EVENTS_BROKER_CONNECT_TIMEOUT", "5"))
EVENTS_BROKER_HEARTBEAT = int(env("EVENTS_BROKER_HEARTBEAT", "30"))
EVENTS_PUBLISH_CONFIRM_TIMEOUT = float(env("EVENTS_PUBLISH_CONFIRM_TIMEOUT", "10"))
EVENTS_PUBLISH_BATCH_SIZE = int(env("EVENTS_PUBLISH_BATCH_SIZE", "200"))
EVENTS_PUBLISH_MAX_BATCHES = int(env("EVENTS_PUBLISH_MAX_BATCHES", "50"))
# How long one publisher run goes on while new events keep arriving before a fresh run takes over.
EVENTS_PUBLISH_SECONDS = float(env("EVENTS_PUBLISH_SECONDS", "2"))
# While the broker is down the waiting event is retried after 2, 4, 8 ... s, at most this often.
EVENTS_PUBLISH_BACKOFF_BASE = float(env("EVENTS_PUBLISH_BACKOFF_BASE", "2"))
EVENTS_PUBLISH_BACKOFF_MAX = float(env("EVENTS_PUBLISH_BACKOFF_MAX", "60"))
EVENTS_OUTBOX_RETENTION_DAYS = int(env("EVENTS_OUTBOX_RETENTION_DAYS", "7"))
EVENTS_INBOX_RETENTION_DAYS = int(env("EVENTS_INBOX_RETENTION_DAYS", "30"))
# Inbound: the webshop's exchange and the CRM's queue on it (plus `<queue>.dlx` / `<queue>.dead`).
WEBSHOP_EVENTS_EXCHANGE = env("WEBSHOP_EVENTS_EXCHANGE", "webshop.events")
WEBSHOP_EVENTS_QUEUE = env("WEBSHOP_EVENTS_QUEUE", "crm.webshop.ingest")
WEBSHOP_EVENTS_BATCH_SIZE = int(env("WEBSHOP_EVENTS_BATCH_SIZE", "100"))
# How long the consumer waits for a batch to fill before applying what it has (seconds).
WEBSHOP_EVENTS_BATCH_WAIT = float(env("WEBSHOP_EVENTS_BATCH_WAIT", "0.5"))
# A webshop message's signature (events/README.md) counts for this long after its time `t`; keep it
# below EVENTS_INBOX_RETENTION_DAYS, so a replayed message is either a known id or refused as too old.
WEBSHOP_SIGNATURE_MAX_AGE_SECONDS = int(env("WEBSHOP_SIGNATURE_MAX_AGE_SECONDS", str(7 * 24 * 3600)))
# Order emails for orders placed longer ago than this are not sent (a historic import is no news).
TRANSACTIONAL_EMAIL_MAX_AGE_HOURS = int(env("TRANSACTIONAL_EMAIL_MAX_AGE_HOURS", "72"))

# --- mail -----------------------------------------------------------------------------------------
MAIL_MAILER = env("MAIL_MAILER", "smtp")
MAIL_FROM_ADDRESS = env("MAIL_FROM_ADDRESS", "noreply@vecton.hu")
MAIL_FILE_PATH = Path(env("MAIL_FILE_PATH", str(BASE_DIR / "var" / "mail")))
MAIL_UNSUBSCRIBE_MAILTO = env("MAIL_UNSUBSCRIBE_MAILTO", "")
# --- tracking -------------------------------------------------------------------------------------
# Raw open/click hits are kept this long after the roll-up counted them (counters stay for good).
TRACKING_HIT_RETENTION_DAYS = int(env("TRACKING_HIT_RETENTION_DAYS", "180"))
# Budgets of the links in our emails, per web worker process (tracking/ratelimit.py): each open or
# click token gets BURST stored hits at once, then one per INTERVAL seconds; over it the answer is the
# same and the hit is only counted. Unsubscribe and preference pages: PAGE_BURST requests per token,
# then one per PAGE_INTERVAL seconds; the same per client address for links that are not valid; 429.
TRACKING_HIT_BURST = int(env("TRACKING_HIT_BURST", "20"))
TRACKING_HIT_INTERVAL_SECONDS = float(env("TRACKING_HIT_INTERVAL_SECONDS", "10"))
TRACKING_PAGE_BURST = int(env("TRACKING_PAGE_BURST", "30"))
TRACKING_PAGE_INTERVAL_SECONDS = float(env("TRACKING_PAGE_INTERVAL_SECONDS", "2"))
EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "core.mail.EmlFileBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}
EMAIL_BACKEND = EMAIL_BACKENDS.get(MAIL_MAILER) or f"anymail.backends.{MAIL_MAILER}.EmailBackend"
EMAIL_FILE_PATH = str(MAIL_FILE_PATH)
EMAIL_HOST = env("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(env("EMAIL_PORT", "1025"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(env("EMAIL_TIMEOUT", "30"))
# Messages from MAIL_FROM_ADDRESS are DKIM-signed with this selector and key (d= its domain) when both are
# set; a tenant's own verified domains sign with their own keys (campaigns/senders.py).
DKIM_SELECTOR = env("DKIM_SELECTOR", "")
DKIM_PRIVATE_KEY_FILE = env("DKIM_PRIVATE_KEY_FILE", "")
# The sender domains' DKIM private keys are stored encrypted with a key derived from this secret. Set it
# once and keep it (it defaults to SECRET_KEY): keys stored under another secret cannot be read.
DKIM_KEY_SECRET = env("DKIM_KEY_SECRET") or SECRET_KEY
# The envelope sender (Return-Path) of every message, where bounces go; empty: the From address.
MAIL_RETURN_PATH = env("MAIL_RETURN_PATH", "")
# DNS look-ups (sender domain verification) go to these nameservers ("host" or "host:port", comma-
# separated; empty: the system's resolver), each given at most DNS_TIMEOUT_SECONDS.
DNS_NAMESERVERS = env_list("DNS_NAMESERVERS", "")
DNS_TIMEOUT_SECONDS = float(env("DNS_TIMEOUT_SECONDS", "5"))
# Campaign sending: recipients per claimed batch, how long a claim holds before it is reclaimed,
# how many batch tasks share one campaign, and how long one task sends before re-enqueueing itself.
CAMPAIGN_BATCH_SIZE = int(env("CAMPAIGN_BATCH_SIZE", "200"))
CAMPAIGN_LEASE_SECONDS = int(env("CAMPAIGN_LEASE_SECONDS", "300"))
CAMPAIGN_SEND_CONCURRENCY = int(env("CAMPAIGN_SEND_CONCURRENCY", "2"))
CAMPAIGN_TASK_SECONDS = int(env("CAMPAIGN_TASK_SECONDS", "30"))
# A sending campaign with due recipients, none held and none sent for this long gets fresh batch
# tasks from beat (its task messages were lost, e.g. with a Redis restart).
CAMPAIGN_STALL_SECONDS = int(env("CAMPAIGN_STALL_SECONDS", "30"))
# Flows (flows/engine.py): due runs advanced per transaction, and how long one tenant's dispatch may
# run before it hands over; how many sender tasks start when a dispatch queued messages.
FLOW_DISPATCH_BATCH = int(env("FLOW_DISPATCH_BATCH", "500"))
FLOW_DISPATCH_SECONDS = int(env("FLOW_DISPATCH_SECONDS", "20"))
FLOW_SEND_CONCURRENCY = int(env("FLOW_SEND_CONCURRENCY", "2"))
# Beat's flow tick (seconds): a due step runs within this (plus the dispatch itself); PRODUCT.md: 15 s.
FLOW_TICK_SECONDS = float(env("FLOW_TICK_SECONDS", "5"))
# Limits of marketers' templates (campaigns/rendering.py): the size of each source (a 400 naming the
# field when saved), `{% for %}` nesting, and the budget of one message's render: steps (loop passes,
# tags, variables, filter calls), characters per rendered part, and seconds as the backstop. Over the
# budget a preview is a 400 and a recipient fails with the reason, instead of a worker burning away.
TEMPLATE_MAX_SUBJECT_CHARS = int(env("TEMPLATE_MAX_SUBJECT_CHARS", "998"))
TEMPLATE_MAX_HTML_BYTES = int(env("TEMPLATE_MAX_HTML_BYTES", str(512 * 1024)))
TEMPLATE_MAX_TEXT_BYTES = int(env("TEMPLATE_MAX_TEXT_BYTES", str(256 * 1024)))
TEMPLATE_MAX_LOOP_DEPTH = int(env("TEMPLATE_MAX_LOOP_DEPTH", "3"))
TEMPLATE_RENDER_MAX_STEPS = int(env("TEMPLATE_RENDER_MAX_STEPS", "100000"))
TEMPLATE_RENDER_MAX_CHARS = int(env("TEMPLATE_RENDER_MAX_CHARS", str(2 * 1024 * 1024)))
TEMPLATE_RENDER_MAX_SECONDS = float(env("TEMPLATE_RENDER_MAX_SECONDS", "5"))
# Any ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"] (API keys, webhook secrets).
ANYMAIL = {key[len("ANYMAIL_") :]: value for key, value in os.environ.items() if key.startswith("ANYMAIL_")}
DEFAULT_FROM_EMAIL = MAIL_FROM_ADDRESS

# --- security -------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if PRODUCTION and (
    problems := production_problems(
        secret_key=SECRET_KEY,
        debug=DEBUG,
        allowed_hosts=ALLOWED_HOSTS,
        app_url=APP_URL,
        public_domain=PUBLIC_DOMAIN,
    )
):
    raise ImproperlyConfigured(
        "APP_ENV=production refuses to start:\n" + "\n".join(f"- {problem}" for problem in problems)
    )

# --- admin theme (django-unfold) -----------------------------------------------------------------
UNFOLD = {
    "SITE_TITLE": "crm_project.admin_site.site_title",
    "SITE_HEADER": "crm_project.admin_site.site_title",
    "SITE_SUBHEADER": "crm_project.admin_site.site_subheader",
    "SITE_URL": "crm_project.admin_site.site_url",
    "SITE_SYMBOL": "campaign",
    "SITE_FAVICONS": [{"rel": "icon", "type": "image/svg+xml", "href": "/favicon.ico"}],
    "STYLES": [lambda request: static("crm_admin/admin.css")],
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "ENVIRONMENT": "crm_project.admin_site.environment_label",
    "DASHBOARD_CALLBACK": "crm_project.admin_site.dashboard_callback",
    # The admin login form knows the tenant's sign-in providers and "SSO required" (signin/).
    "LOGIN": {"form": "signin.forms.AdminLoginForm"},
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "crm_project.admin_site.navigation",
    },
}
