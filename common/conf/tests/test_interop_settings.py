"""The settings both the issuer and the gateway read for interoperability: the public base URL, the issuer, CORS."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from common.conf.settings import cors_settings, token_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_PUBLIC_URL", "JWT_ISSUER", "CORS_ALLOWED_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def test_the_issuer_is_the_gateways_public_base_url_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert token_settings()["JWT_ISSUER"] == "http://127.0.0.1:8000"

    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://auth.example.com/")
    settings = token_settings()

    assert settings["GATEWAY_PUBLIC_URL"] == settings["JWT_ISSUER"] == "https://auth.example.com"


def test_an_explicit_issuer_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://auth.example.com")
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example.com")

    assert token_settings()["JWT_ISSUER"] == "https://issuer.example.com"


@pytest.mark.parametrize("value", ["auth.example.com", "ftp://auth.example.com", "https://", "https://a.example/?x=1"])
def test_a_public_url_that_is_no_http_base_url_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", value)

    with pytest.raises(ImproperlyConfigured, match="GATEWAY_PUBLIC_URL"):
        token_settings()


def test_cors_allows_no_origin_by_default_and_credentials_for_listed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cors_settings()["CORS_ALLOWED_ORIGINS"] == []

    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://app.example, http://localhost:5173")
    settings = cors_settings()

    assert settings["CORS_ALLOWED_ORIGINS"] == ["https://app.example", "http://localhost:5173"]
    assert settings["CORS_ALLOW_CREDENTIALS"] is True
    assert "x-csrf-token" in settings["CORS_ALLOW_HEADERS"]


@pytest.mark.parametrize("origin", ["*", "null", "https://app.example/", "app.example", "https://app.example/path"])
def test_a_wildcard_or_anything_but_an_origin_is_refused(monkeypatch: pytest.MonkeyPatch, origin: str) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", origin)

    with pytest.raises(ImproperlyConfigured, match="CORS_ALLOWED_ORIGINS"):
        cors_settings()
