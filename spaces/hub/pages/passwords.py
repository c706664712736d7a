"""Password hashing for web sign-in: stdlib scrypt with a random salt per password.

Stored form: ``scrypt$N$r$p$<salt b64>$<hash b64>``; the parameters travel with the hash so they can be raised
later without breaking existing accounts. Verification runs in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# N=2**14, r=8: 16 MiB and about 50 ms per check on this machine kind; enough to make offline guessing costly.
_N, _R, _P, _LEN = 2**14, 8, 1, 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; False for a missing or malformed hash (never raises)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected), maxmem=128 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)
