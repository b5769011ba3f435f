"""One sign-in with a provider, from the redirect to the provider to its answer.

The browser carries it in a signed cookie (`routes/ui/admin/sso.py`), so any
worker or replica can finish what another started, and nothing is stored.
What it holds makes each answer good for this browser and this attempt only:

- `state` (RFC 6749 §10.12): the answer must bring it back, so a forged
  answer (login CSRF: an attacker's code in a victim's browser) is refused;
- `nonce` (OpenID Connect Core §3.1.2.1): the ID token must carry it, so a
  token issued for another sign-in (a replay) is refused;
- `verifier` (PKCE, RFC 7636, S256): the code is exchanged with it, so a code
  intercepted on its way back is of no use to anyone else.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

ATTEMPT_SECONDS = 600  # time to type a password and consent at the provider


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    provider: str
    state: str
    nonce: str
    verifier: str
    next: str
    expires: int

    @classmethod
    def start(cls, provider: str, next_path: str) -> SignInAttempt:
        """A new attempt with fresh random values (256 bits each)."""
        return cls(
            provider=provider,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=next_path,
            expires=int(time.time()) + ATTEMPT_SECONDS,
        )

    @property
    def challenge(self) -> str:
        """The PKCE S256 code challenge of `verifier` (RFC 7636 §4.2)."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def to_payload(self) -> dict[str, object]:
        return {
            "p": self.provider,
            "s": self.state,
            "n": self.nonce,
            "v": self.verifier,
            "x": self.next,
            "e": self.expires,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> SignInAttempt | None:
        """The attempt a signed cookie held, or None if malformed or expired."""
        values = [payload.get(key) for key in ("p", "s", "n", "v", "x")]
        expires = payload.get("e")
        if not all(isinstance(value, str) and value for value in values):
            return None
        if not isinstance(expires, int) or expires < time.time():
            return None
        provider, state, nonce, verifier, next_path = (str(value) for value in values)
        return cls(provider, state, nonce, verifier, next_path, expires)
