"""Production: secrets must come from the environment; JSON logs; secure cookies."""

from common.conf.env import env_required

SECRET_KEY = env_required("SECRET_KEY")

from gateway.settings.base import *

SECRET_KEY = env_required("SECRET_KEY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
