"""A client of authmesh for the user's own Python services: verify its access tokens, obtain service tokens.

Everything is found from the gateway's OpenID Connect discovery document (SPEC §2c); the package needs PyJWT (with
`cryptography`) and, for `authmesh_client.drf`, Django REST framework. It imports nothing else of this repository.

    from authmesh_client import ServiceTokenClient, TokenVerifier

    DISCOVERY = "https://auth.example.com/.well-known/openid-configuration"
    verifier = TokenVerifier(DISCOVERY, audience="authmesh-api")
    claims = verifier.verify(token)           # InvalidToken when it is not one of ours, for us, still valid

    service = ServiceTokenClient(DISCOVERY, client_id="billing", client_secret=secret, scope="users:read")
    headers = {"Authorization": f"Bearer {service.token()}"}   # cached until shortly before it expires

A DRF service authenticates requests with `authmesh_client.drf.AuthmeshTokenAuthentication` (docs/CLIENT.md).

What the verifier cannot know: the gateway also checks that a user's session is still live, so a logged-out or
denied user's token stops working there at once; a service verifying tokens on its own accepts them until `exp`.
"""

from authmesh_client.discovery import Discovery, DiscoveryError
from authmesh_client.service_token import ServiceTokenClient, ServiceTokenError
from authmesh_client.verifier import InvalidToken, KeysUnavailable, TokenVerifier

__all__ = [
    "Discovery",
    "DiscoveryError",
    "InvalidToken",
    "KeysUnavailable",
    "ServiceTokenClient",
    "ServiceTokenError",
    "TokenVerifier",
]
