"""Production: secrets must come from the environment; JSON logs."""

from common.conf.env import env, env_required
from main_api.settings.base import *

SECRET_KEY = env_required("SECRET_KEY")
# No published default: with SEED_ADMIN_ACCOUNT on and no SEED_PASSWORD the seed creates no staff account.
SEED_PASSWORD = env("SEED_PASSWORD")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
