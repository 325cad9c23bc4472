"""The OpenAPI document at /api/schema/: valid OpenAPI 3, and exactly the routes of SPEC §2."""

from __future__ import annotations

from typing import Any

from django.test import Client
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

# SPEC §2, route by route.
SPEC_OPERATIONS = {
    ("/api/signup", "post"),
    ("/api/verify-account", "post"),
    ("/api/resend-verification", "post"),
    ("/api/login", "post"),
    ("/api/recover-credentials", "post"),
    ("/api/reset-password", "post"),
    ("/api/auth/revalidate-credentials", "post"),
    ("/api/auth/logout", "post"),
    ("/api/auth/sessions", "get"),
    ("/api/auth/sessions/{sid}", "delete"),
    ("/api/auth/deny-access", "post"),
    ("/api/user", "get"),
    ("/api/user/{user_id}", "get"),
    ("/api/user", "post"),
    ("/api/user/{user_id}", "patch"),
    ("/api/user/deactivate/{user_id}", "patch"),
    ("/api/user/{user_id}", "delete"),
    ("/api/admin/log-level", "get"),
    ("/api/admin/log-level", "post"),
    ("/api/seed", "get"),
    ("/.well-known/jwks.json", "get"),
    # SPEC §2c.
    ("/.well-known/openid-configuration", "get"),
    ("/api/oauth/token", "post"),
    # SPEC §2b
    ("/api/login/mfa", "post"),
    ("/api/auth/mfa", "get"),
    ("/api/auth/mfa/totp/setup", "post"),
    ("/api/auth/mfa/totp/confirm", "post"),
    ("/api/auth/mfa/totp", "delete"),
    ("/api/auth/mfa/recovery-codes", "post"),
    ("/api/user/{user_id}/mfa", "delete"),
}
FROM_SETTINGS_ONLY = ("/.well-known/openid-configuration", "get")
# An OAuth endpoint answers RFC 6749's error bodies, not the envelope.
OAUTH_ERROR = {"$ref": "#/components/schemas/TokenError"}
# Also SPEC §2 routes, but not API operations: the document itself and its UI, and the health probes every
# service answers (plain Django views). They are checked to answer below instead.
UNDOCUMENTED = ("/api/schema/", "/api/docs/", "/healthz")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    document = response.json()
    assert isinstance(document, dict)
    return document


def test_the_document_is_valid_openapi_3() -> None:
    document = schema()

    validate(document)  # raises OpenAPIValidationError with the path of the first problem

    assert document["openapi"].startswith("3.")


def test_the_yaml_form_is_the_same_document(tmp_path: Any) -> None:
    response = Client().get("/api/schema/")
    path = tmp_path / "schema.yaml"
    path.write_bytes(response.content)

    spec, _ = read_from_filename(str(path))

    validate(spec)
    assert spec == schema()


def test_the_document_lists_exactly_the_routes_of_the_spec() -> None:
    paths = schema()["paths"]

    operations = {(path, method) for path, item in paths.items() for method in item if method in HTTP_METHODS}

    assert operations == SPEC_OPERATIONS


def test_the_login_documents_both_answers_and_a_delete_its_body() -> None:
    document = schema()
    paths = document["paths"]

    login_reply = paths["/api/login"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    one_of = document["components"]["schemas"]["LoginReply"]["oneOf"]
    totp_off = paths["/api/auth/mfa/totp"]["delete"]["requestBody"]["content"]["application/json"]["schema"]

    assert login_reply == {"$ref": "#/components/schemas/LoginReply"}
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in one_of] == ["AccessToken", "MfaChallenge"]
    assert totp_off == {"$ref": "#/components/schemas/PasswordAndCodeRequest"}
    assert "requestBody" not in paths["/api/user/{user_id}/mfa"]["delete"]


def test_every_operation_documents_its_errors_in_the_envelope() -> None:
    document = schema()
    error = {"$ref": "#/components/schemas/Error"}

    for path, item in document["paths"].items():
        for method, operation in item.items():
            statuses = {status for status in operation["responses"] if status.startswith(("4", "5"))}
            # Every operation but the discovery document (settings only) may find a service or store unavailable.
            assert statuses == set() if (path, method) == FROM_SETTINGS_ONLY else {"503"} <= statuses, (path, method)
            expected = OAUTH_ERROR if path == "/api/oauth/token" else error
            for status in statuses:
                assert operation["responses"][status]["content"]["application/json"]["schema"] == expected


def test_the_routes_outside_the_document_answer() -> None:
    for path in UNDOCUMENTED:
        assert Client().get(path).status_code == 200, path
    # Readiness needs the services (503 here, without them); what matters is that the route exists.
    assert Client().get("/readyz").status_code in {200, 503}
