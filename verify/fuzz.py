"""Schema-driven fuzzing of every gateway operation with schemathesis: anonymous and as a sys_admin."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.auths import AuthContext, AuthStorage
from schemathesis.checks import CHECKS
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup

from verify.client import Session
from verify.consistency import Checker
from verify.report import Row, say
from verify.system import System

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 25
# Anonymous calls to an operation that needs credentials only ever meet the authentication check.
ANONYMOUS_EXAMPLES = 10
# The whole section stops starting operations after this; the ones left are reported, never silently skipped.
BUDGET_SECONDS = 300.0
REQUEST_TIMEOUT = 15.0
# Response checks run on every case. Left out: the stateful ones (use_after_free, ensure_resource_availability
# need the stateful phase) and the coverage-phase ones (missing_required_header, unsupported_method), which
# this hypothesis-driven loop does not generate; max_response_time (latency is the soak's business).
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "ignored_auth",
)
ADMIN = "sys-admin@test.com"
# Refresh-cookie routes rotate or end the session they are given (logout?all=true ends all of the user's):
# each case gets a fresh session of an account nothing else in the fuzz section uses.
REFRESH_ACCOUNT = "guest@test.com"


@dataclass
class OperationResult:
    label: str
    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    server_errors: int = 0
    relogins: int = 0

    def fail(self, key: str, text: str) -> None:
        self.failures.setdefault(key, text)


class Credentials:
    """What a fuzzed case sends to prove who it is: nothing, the sys_admin's token and CSRF pair, or a
    fresh refresh-cookie session."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.admin = Session(address)
        self._login(self.admin, ADMIN)

    @staticmethod
    def _login(session: Session, slug: str) -> None:
        reply = session.login(slug)
        if reply.status != 200:
            raise RuntimeError(f"fuzz: cannot log in as {slug}: {reply.status} {reply.body[:200]!r}")

    def ensure_admin(self) -> bool:
        """Log the sys_admin in again if a fuzzed case ended its session; True when that was needed."""
        if self.admin.call("GET", "/api/auth/sessions", bearer=True).status == 200:
            return False
        self.admin = Session(self.address)
        self._login(self.admin, ADMIN)
        return True

    def for_case(self, schemes: set[str]) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, cookies) for an operation whose security names `schemes`."""
        if "refreshCookie" in schemes:
            session = Session(self.address)
            self._login(session, REFRESH_ACCOUNT)
            return {"x-csrf-token": session.cookies["csrf"]}, dict(session.cookies)
        csrf = self.admin.cookies["csrf"]
        return {"Authorization": f"Bearer {self.admin.token}", "x-csrf-token": csrf}, {"csrf": csrf}


def _security_schemes(operation: Any) -> set[str]:
    requirements = operation.definition.raw.get("security") or []
    return {name for requirement in requirements for name in requirement}


Credentialed = tuple[dict[str, str], dict[str, str]]


class CredentialsProvider:
    """A schemathesis auth provider: schemathesis then leaves a case's security parameters alone, except in
    the negative cases that drop or break them on purpose (those must be refused)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def get(self, case: Any, context: AuthContext) -> Credentialed | None:
        schemes = _security_schemes(case.operation)
        return self.credentials.for_case(schemes) if schemes else None

    def set(self, case: Any, data: Credentialed, context: AuthContext) -> None:
        headers, cookies = data
        case.headers = {**(case.headers or {}), **headers}
        case.cookies = {**(case.cookies or {}), **cookies}


def _fuzz(
    operation: Any,
    *,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    credentials: Credentials | None,
    result: OperationResult,
    deadline: float,
) -> None:
    checks = [CHECKS.get_one(name) for name in CHECK_NAMES]
    tag = f"{'admin' if credentials else 'anonymous'}/{mode.value}"
    storage: AuthStorage[Credentialed] | None = (
        AuthStorage(providers=[CredentialsProvider(credentials)]) if credentials else None
    )

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        # Reproducible in CI: the same cases every run (a schema change or another seed explores further).
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=operation.as_strategy(generation_mode=mode, auth_storage=storage))
    def test(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT)
        result.examples[tag] += 1
        result.statuses[response.status_code] += 1
        if response.status_code == 500:
            result.server_errors += 1
        try:
            case.validate_response(response, checks=checks, transport_kwargs={"base_url": base_url})
        except FailureGroup as group:
            for failure in group.exceptions:
                detail = " ".join(f"{failure.title}: {failure.message or ''}".split())
                result.fail(f"{type(failure).__name__}: {failure.title}", f"[{tag}] {detail[:400]} {case!r:.300}")
        if credentials and response.status_code == 401 and credentials.ensure_admin():
            result.relogins += 1

    try:
        test()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no parameters, no body): no negative case exists.
        result.examples[f"{tag} (none possible)"] += 0


def run(system: System, checker: Checker, selected: Callable[[str], bool]) -> list[Row]:
    host, port = system.gateway
    base_url = f"http://{host}:{port}"
    say(f"fuzz: schemathesis {schemathesis.__version__}, {MAX_EXAMPLES} examples per operation and mode")
    schema = schemathesis.openapi.from_url(
        f"{base_url}/api/schema/", config=schemathesis.Config.from_path(CONFIG), timeout=30
    )
    credentials = Credentials(system.gateway)
    deadline = time.monotonic() + BUDGET_SECONDS
    rows: list[Row] = []
    for loaded in schema.get_all_operations():
        if isinstance(loaded, Err):
            rows.append(Row(section="fuzz", name="schema", problems=[f"unusable operation: {loaded.err()}"]))
            continue
        operation = loaded.ok()
        label = operation.label
        if not selected(label):
            continue
        started = time.monotonic()
        row = Row(section="fuzz", name=label)
        result = OperationResult(label)
        if time.monotonic() > deadline:
            row.problems.append(f"not fuzzed: the {BUDGET_SECONDS:.0f} s budget of the section ran out")
            rows.append(row)
            continue
        secured = bool(_security_schemes(operation))
        plans: list[tuple[GenerationMode, int, Credentials | None]] = [
            (GenerationMode.POSITIVE, ANONYMOUS_EXAMPLES if secured else MAX_EXAMPLES, None),
        ]
        if secured:
            plans += [
                (GenerationMode.POSITIVE, MAX_EXAMPLES, credentials),
                (GenerationMode.NEGATIVE, MAX_EXAMPLES, credentials),
            ]
        else:
            plans.append((GenerationMode.NEGATIVE, MAX_EXAMPLES, None))
        for mode, examples, who in plans:
            _fuzz(
                operation,
                mode=mode,
                examples=examples,
                base_url=base_url,
                credentials=who,
                result=result,
                deadline=deadline,
            )
        row.server_errors = result.server_errors
        row.problems = list(result.failures.values())
        row.seconds = time.monotonic() - started
        row.details = {
            "examples": dict(result.examples),
            "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
            "admin_relogins": result.relogins,
        }
        rows.append(row)
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(result.statuses.items()))
        say(
            f"  {label:<40} {sum(result.examples.values()):4} cases  {statuses:<40} "
            f"{'ok' if row.passed else f'FAIL ({len(row.problems)})'}"
        )
    return rows
