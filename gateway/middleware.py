"""The gateway's middleware, in order: its settings use this list, and the lean WSGI front (gateway/api/fastlane.py)
stands for exactly it: with any other list in settings.MIDDLEWARE, the front steps aside and Django answers all.

No Django CSRF/session/auth middleware: the API is stateless; CSRF is the gateway's own double-submit check.
"""

MIDDLEWARE = (
    "common.api.middleware.RequestContextMiddleware",
    # Before anything that may answer (CommonMiddleware, the lean path): a preflight is answered here, and every
    # answer to an allowed origin carries the CORS headers (CORS_ALLOWED_ORIGINS, common/conf/settings.py).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # HTML answers only (browsable API, docs UI): the JSON answers, lean path included, are left as they are, so the
    # lean front needs not call it.
    "common.api.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Innermost: the hot read routes on a lean path with the DRF views' own checks (gateway/api/fastlane.py).
    "gateway.api.fastlane.LeanRoutesMiddleware",
)
