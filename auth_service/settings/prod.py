"""Production: secrets must come from the environment; JSON logs; SMTP mail."""

from auth_service.settings.base import *
from common.conf.env import env, env_required

SECRET_KEY = env_required("SECRET_KEY")
# No published default: without SEED_PASSWORD (or SEED_PASSWORD_FILE) the seed creates no account; the first one
# comes from an initial password the deployment chose, or from `manage_auth.py createsuperuser`.
SEED_PASSWORD = env("SEED_PASSWORD")
REFRESH_TOKEN_SECRET = env_required("REFRESH_TOKEN_SECRET")
KEY_ENCRYPTION_KEYS = [key.strip() for key in env_required("KEY_ENCRYPTION_KEYS").split(",") if key.strip()]
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
