"""The auth service's second-factor subjects (SPEC §2b): TOTP, recovery codes, the login's second step."""

from __future__ import annotations

from common.contracts import subjects
from common.contracts.auth import Tokens, UserRef
from common.contracts.rpc import Contract, Empty, Message, Text
from common.contracts.users import Timestamp

# The ways a login may be finished after the password, as `methods` lists them.
METHOD_TOTP = "totp"
METHOD_RECOVERY_CODE = "recovery_code"
METHOD_PASSKEY = "passkey"


class LoginMfa(Message):
    """The login's second step: the `mfaToken` of the first and one of `code` (TOTP) or `recoveryCode`."""

    mfa_token: Text
    code: Text | None = None
    recovery_code: Text | None = None


class CodeOnly(Message):
    code: Text


class PasswordAndCode(Message):
    """Proof of both factors for a change of them: the password and a TOTP or recovery code."""

    password: Text
    code: Text


class PasskeyInfo(Message):
    id: str
    name: str
    created_at: Timestamp
    last_used_at: Timestamp | None


class MfaStatus(Message):
    totp: bool
    recovery_codes_left: int
    passkeys: list[PasskeyInfo]


class TotpSetup(Message):
    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodes(Message):
    recovery_codes: list[str]


LOGIN_MFA = Contract(subjects.AUTH_LOGIN_MFA, LoginMfa, Tokens, errors=(400, 401, 429))
MFA_STATUS = Contract(subjects.AUTH_MFA_STATUS, Empty, MfaStatus, errors=(401,))
TOTP_SETUP = Contract(subjects.AUTH_TOTP_SETUP, Empty, TotpSetup, errors=(401, 409))
TOTP_CONFIRM = Contract(subjects.AUTH_TOTP_CONFIRM, CodeOnly, RecoveryCodes, errors=(400, 401))
TOTP_DISABLE = Contract(subjects.AUTH_TOTP_DISABLE, PasswordAndCode, errors=(400, 401, 429))
RECOVERY_CODES_REGENERATE = Contract(
    subjects.AUTH_RECOVERY_CODES_REGENERATE, PasswordAndCode, RecoveryCodes, errors=(400, 401, 429)
)
MFA_RESET = Contract(subjects.AUTH_MFA_RESET, UserRef, errors=(400, 401, 403, 404))
