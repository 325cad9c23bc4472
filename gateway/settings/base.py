"""Gateway settings read from the environment. No database: sessions live in Redis, data behind NATS."""

from common.conf.env import env_bool, env_float, env_int, env_list
from common.conf.settings import common_settings, cors_settings, drf_settings, token_settings
from gateway.middleware import MIDDLEWARE as GATEWAY_MIDDLEWARE

globals().update(common_settings("gateway", debug_default=False))
globals().update(token_settings())
globals().update(cors_settings())

DATABASES: dict[str, dict[str, object]] = {}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    # Imported by simplejwt (its stateless TokenUser); no table is ever read: the gateway has no database.
    "django.contrib.auth",
    "django.contrib.staticfiles",
    # Before the libraries: its templates override theirs (the docs UI page without inline style).
    "gateway.api",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc as static files of our own (collectstatic), pinned by requirements/gateway.txt.
    "drf_spectacular_sidecar",
    "corsheaders",
    "common.messaging",
]

# In order, with why each stands where it does; the lean WSGI front stands for exactly this list.
MIDDLEWARE = list(GATEWAY_MIDDLEWARE)
# LEAN_ROUTES=false sends those routes through DRF too (same answers, more CPU per request).
LEAN_ROUTES = env_bool("LEAN_ROUTES", True)

# Modules whose `ROUTES` (gateway.api.routing.Route) the gateway serves: SPEC §2's and §2b's passkeys, then any a
# deployment adds.
GATEWAY_ROUTE_MODULES = ["gateway.api.routes", "gateway.api.passkeys", *env_list("GATEWAY_ROUTE_MODULES", [])]

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"
NATS_HANDLERS_MODULE = "gateway.handlers"
READINESS_SERVICES = ["auth", "main"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# orjson first: the default and the fast path. The browsable API answers only a client that asks for text/html
# (a person with a browser); BROWSABLE_API=false removes it, and with it the `access` cookie (README).
BROWSABLE_API = env_bool("BROWSABLE_API", True)
_RENDERERS = ["gateway.api.renderers.OrjsonRenderer"]
if BROWSABLE_API:
    _RENDERERS.append("gateway.api.renderers.GatewayBrowsableAPIRenderer")

REST_FRAMEWORK = drf_settings(
    DEFAULT_AUTHENTICATION_CLASSES=["gateway.api.authentication.AccessTokenAuthentication"],
    DEFAULT_SCHEMA_CLASS="gateway.api.schema.RouteSchema",
    DEFAULT_RENDERER_CLASSES=_RENDERERS,
)

SPECTACULAR_SETTINGS = {
    "TITLE": "Authmesh API",
    "DESCRIPTION": (
        "Authentication for microservices: sign-up, verification, login, refresh, users and roles.\n\n"
        "Every error has the body `{statusCode, error, message, fields?}`. Unsafe requests on authenticated "
        "routes need the `x-csrf-token` header equal to the CSRF cookie set at login."
    ),
    "VERSION": "1.0.0",
    # The docs UI loads nothing from another origin: the sidecar's pinned builds, served as our static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge (it would send the document to a third party).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public, and a stale bearer header must not make them answer 401.
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "refreshCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": "Authentication",
                "description": "The signed refresh token, set by login (HttpOnly, path /api/auth).",
            },
            "csrfHeader": {
                "type": "apiKey",
                "in": "header",
                "name": "x-csrf-token",
                "description": "The value of the `__Host-csrf` cookie (`csrf` in plain-HTTP development).",
            },
        }
    },
}

# Cookies: Secure by default; plain-HTTP development turns it off (and the CSRF cookie then loses its
# `__Host-` prefix, which browsers only accept on Secure cookies).
COOKIE_SECURE = env_bool("COOKIE_SECURE", True)
# HSTS on every answer to an HTTPS request (SecurityMiddleware; behind a proxy, see SECURE_PROXY_SSL_HEADER in
# prod): a year wherever cookies are Secure, i.e. wherever the gateway is meant to be reached over HTTPS only.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if COOKIE_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# Content-Security-Policy of the HTML pages (common/api/csp.py): scripts, styles and everything else from this
# origin only, no inline script or style (the docs UI's start-up script is a request of its own, its style a
# static file), images also as data: URIs (Swagger UI's icons), never framed.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Seeding over HTTP: development only, never destructive.
SEED_OVER_HTTP = env_bool("SEED_OVER_HTTP", False)
SEED_TIMEOUT_SECONDS = env_float("SEED_TIMEOUT_SECONDS", 60.0)
# Proxies whose X-Forwarded-For we trust (count of hops); 0 = use REMOTE_ADDR.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)

# JWKS client: the auth service's key set over NATS, cached; unknown kids refetch at most once per interval.
JWKS_CACHE_SECONDS = env_int("JWKS_CACHE_SECONDS", 300)
JWKS_REFETCH_INTERVAL_SECONDS = env_int("JWKS_REFETCH_INTERVAL_SECONDS", 30)
JWKS_FETCH_TIMEOUT_SECONDS = env_float("JWKS_FETCH_TIMEOUT_SECONDS", 2.0)
# Clock skew tolerated between the auth service (issuer) and the gateway when checking exp/iat.
JWT_LEEWAY_SECONDS = env_int("JWT_LEEWAY_SECONDS", 5)
# The bearer authentication is simplejwt's (gateway/api/access_tokens.py), with the values the auth service signs
# with. Keys come from the JWKS cache above (not JWK_URL); the type is the `typ: at+jwt` header (RFC 9068), so no
# type claim; `sub` is the user id.
SIMPLE_JWT = {
    "ALGORITHM": "RS256",
    # Set by token_settings() above (the names the auth service signs with), read back from this module's globals.
    "ISSUER": globals()["JWT_ISSUER"],
    "AUDIENCE": globals()["JWT_AUDIENCE"],
    "LEEWAY": JWT_LEEWAY_SECONDS,
    "USER_ID_CLAIM": "sub",
    "TOKEN_TYPE_CLAIM": None,
    "JTI_CLAIM": "jti",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "AUTH_TOKEN_CLASSES": ("gateway.api.access_tokens.AccessToken",),
}

# Throttles: "<limit>/<window>" per scope and key kind (ip: a client's IPv4 address or IPv6 /64; account; or
# account-source: one account as seen from one client); windows take s, m, h or d with a count. The development
# defaults let one IP make 300+ sign-ups and logins and 50+ recoveries in 10 minutes. Logins are limited per account
# and client only, so a stranger's requests never lock the owner out; the auth service counts the failures per
# account and source behind it. THROTTLE_RATES="login.ip=5/1m,..." overrides entries.
THROTTLE_RATES = {
    "signup.ip": "500/10m",
    "signup.account": "10/10m",
    "login.ip": "500/10m",
    "login.account-source": "100/10m",
    # A passkey login's options: a challenge in Redis each, nothing checked yet (the verification counts as a login).
    "passkey-options.ip": "500/10m",
    "verify-account.ip": "500/10m",
    "verify-account.account": "30/10m",
    "resend-verification.ip": "200/10m",
    "resend-verification.account": "10/10m",
    "recover-credentials.ip": "100/10m",
    "recover-credentials.account": "10/10m",
    "reset-password.ip": "100/10m",
    "reset-password.account": "10/10m",
    # Service accounts' token requests: a client needs one token per access-token lifetime.
    "oauth-token.ip": "600/10m",
    "oauth-token.account": "60/10m",
}
for _entry in env_list("THROTTLE_RATES", []):
    _scope, _, _rate = _entry.partition("=")
    THROTTLE_RATES[_scope.strip()] = _rate.strip()
