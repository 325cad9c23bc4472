"""Production: secrets must come from the environment; JSON logs."""

from common.conf.env import env_required
from main_api.settings.base import *

SECRET_KEY = env_required("SECRET_KEY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
