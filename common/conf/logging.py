"""Logging: one JSON line per event in production, readable lines in development; both carry the request id."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from common.conf.context import request_id_var, user_id_var

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Stamps every record with the service name and the current request id and user id."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        if not getattr(record, "user_id", None):
            record.user_id = user_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and value is not None and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class DevFormatter(logging.Formatter):
    """Readable single lines; extra fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and key not in {"service"} and value is not None and not key.startswith("_")
        )
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  [{extras}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def logging_config(*, service: str, json: bool, level: str = "INFO") -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter, "service": service}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "dev": {"()": DevFormatter},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["context"],
                "formatter": "json" if json else "dev",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "nats": {"level": "WARNING"},
            "celery": {"level": "INFO"},
        },
    }


def set_service_log_level(level: str) -> str:
    """Change the level of the root logger (and so of this process' own loggers) at run time."""
    normalised = level.upper()
    if normalised not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"unknown log level {level!r}")
    logging.getLogger().setLevel(normalised)
    return normalised


def current_log_level() -> str:
    return logging.getLevelName(logging.getLogger().level)
