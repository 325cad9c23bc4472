"""The gateway's HTML pages load only what it serves itself, under a strict CSP; HSTS over HTTPS; and the error
envelope for any unknown path, whatever the client accepts and whether DEBUG is on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path as route

from devstack.testing.envelopes import envelope
from devstack.testing.stack import REPO_ROOT
from gateway import urls as gateway_urls
from gateway.api import fastlane
from gateway.api import jwks as jwks_module
from gateway.api.tests.tokens import Signer

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what a browser sends on navigation
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS_ONE_YEAR = "max-age=31536000"
ACCEPTS = [HTML, "text/html", "application/json", "*/*", None]


def get(path: str, accept: str | None = None, **extra: Any) -> HttpResponse:
    headers = {"Accept": accept} if accept else {}
    response: HttpResponse = Client().get(path, headers=headers, **extra)
    return response


def assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


@pytest.fixture
def jwks(monkeypatch: pytest.MonkeyPatch, signer: Signer) -> None:
    signer.trusted_by(jwks_module, monkeypatch)


# --- the docs UI -------------------------------------------------------------------------------------------------


def test_the_docs_ui_loads_its_assets_from_our_static_files_only() -> None:
    response = get("/api/docs/", HTML)

    assert response.status_code == 200
    html = response.content.decode()
    urls = assets(html)
    assert urls == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "/static/gateway_api/docs.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/api/docs/?script=",
    ]
    for url in urls[:-1]:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not among the static files"
    # Nothing inline: every script has a source, and no <style> element (the CSP allows neither).
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html


def test_the_docs_ui_start_up_script_is_a_request_of_its_own() -> None:
    response = get("/api/docs/?script=")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/javascript"
    script = response.content.decode()
    assert 'url: "/api/schema/"' in script
    assert '"validatorUrl": null' in script, "no validator badge: it would send the document to a third party"


# --- Content-Security-Policy -------------------------------------------------------------------------------------


def test_the_docs_ui_and_the_browsable_api_have_a_strict_csp() -> None:
    docs = get("/api/docs/", HTML)
    browsable = get("/api/user", HTML)  # 401, rendered as a page for the browser

    assert (docs.status_code, browsable.status_code) == (200, 401)
    assert browsable["Content-Type"].startswith("text/html")
    assert docs["Content-Security-Policy"] == CSP
    assert browsable["Content-Security-Policy"] == CSP


@pytest.mark.usefixtures("jwks")
def test_json_answers_have_no_csp() -> None:
    for response in (get("/api/user", "application/json"), get("/.well-known/jwks.json"), get("/api/docs/?script=")):
        assert not response["Content-Type"].startswith("text/html")
        assert "Content-Security-Policy" not in response


# --- HSTS --------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("jwks")
def test_hsts_on_every_https_answer_and_never_over_plain_http() -> None:
    for path in ("/api/docs/", "/api/user", "/api/nothing-here", "/healthz", "/.well-known/jwks.json"):
        assert get(path, secure=True)["Strict-Transport-Security"] == HSTS_ONE_YEAR, path
        assert "Strict-Transport-Security" not in get(path), path


@pytest.mark.usefixtures("jwks")
def test_the_lean_front_stays_on_and_sends_hsts_too() -> None:
    front = fastlane.LeanFront(WSGIHandler())
    assert front.enabled, "the middleware list is the one the front stands for"
    started: list[Any] = []
    environ = RequestFactory().get("/.well-known/jwks.json", secure=True).environ

    body = b"".join(front(environ, lambda status, headers, exc_info=None: started.extend([status, headers])))

    assert started[0] == "200 OK" and b'"keys"' in body
    headers = dict(started[1])
    assert headers["Strict-Transport-Security"] == HSTS_ONE_YEAR
    assert "Content-Security-Policy" not in headers


def settings_value(module: str, name: str, **env: str) -> str:
    """A setting as a fresh process with `module` (and only `env` on top of this one's) reads it."""
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    environment = {
        **{key: value for key, value in os.environ.items() if key not in {"COOKIE_SECURE", "SECURE_HSTS_SECONDS"}},
        "DJANGO_SETTINGS_MODULE": module,
        "SECRET_KEY": "s" * 64,
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_hsts_is_on_in_production_and_off_for_plain_http_development() -> None:
    assert settings_value("gateway.settings.prod", "SECURE_HSTS_SECONDS") == "31536000"
    assert settings_value("gateway.settings.prod", "SECURE_PROXY_SSL_HEADER") == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert settings_value("gateway.settings.dev", "SECURE_HSTS_SECONDS") == "0"
    assert settings_value("gateway.settings.prod", "SECURE_HSTS_SECONDS", SECURE_HSTS_SECONDS="600") == "600"


# --- the error envelope ------------------------------------------------------------------------------------------


def not_found(method: str, path: str) -> dict[str, Any]:
    return envelope(404, f"Cannot {method} {path}", "not_found")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_an_unknown_path_is_the_404_envelope_whatever_is_accepted_and_debug(debug: bool, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    with override_settings(DEBUG=debug):
        for method, path in [
            ("GET", "/api/does-not-exist"),
            ("GET", "/nothing/here/"),
            ("GET", "/"),
            ("POST", "/api/does-not-exist"),
            ("DELETE", "/api/user/1/2"),
            ("POST", "/api/docs"),
        ]:
            response = Client().generic(method, path, headers=headers)
            assert response.status_code == 404, (method, path)
            assert response["Content-Type"] == "application/json", (method, path)
            assert response.json() == not_found(method, path)


def test_a_path_that_exists_with_a_slash_is_still_redirected_there() -> None:
    for path, target in [("/api/docs", "/api/docs/"), ("/api/schema?lang=en", "/api/schema/?lang=en")]:
        response = get(path, HTML)
        assert response.status_code == 301, path
        assert response["Location"] == target
    head = Client().head("/api/docs")
    assert (head.status_code, head["Location"]) == (301, "/api/docs/")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
def test_a_wrong_method_is_the_405_envelope(debug: bool, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    with override_settings(DEBUG=debug):
        response = Client().put("/api/signup", data={}, content_type="application/json", headers=headers)
    assert response.status_code == 405
    assert response.json() == envelope(405, 'Method "PUT" not allowed.', "method_not_allowed")


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


# The gateway's URLconf with one route that fails, before its catch-all (for the 500 below).
urlpatterns = [route("crash", crash), *gateway_urls.urlpatterns]
handler500 = gateway_urls.handler500


@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_server_error_is_the_500_envelope(accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = Client(raise_request_exception=False).get("/crash", headers=headers)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == envelope(500, "Internal server error", "internal_error")
