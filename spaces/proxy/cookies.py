"""The cookies an app may set: only its own, for its own host.

Apps live on sibling hosts of the hub (``alice-x.localhost`` next to ``localhost``), so an app answering
``Set-Cookie: spaces_session=...; Domain=localhost`` would plant a cookie that the browser sends to the hub and to
every other Space (session fixation, cookie tossing). The proxy drops, from an app's response heads only:

* a cookie with a ``Domain`` attribute other than the app's own host name: the only wider domains a browser
  accepts from that host are its parents, which cover the hub or other Spaces;
* a cookie named like one the platform sets (the hub's session, the proxy's app-auth cookie), also behind the
  ``__Host-``/``__Secure-`` prefixes (browsers compare those case-insensitively), so nothing an app sets can
  stand in for or shadow them.

Only heads that carry a Set-Cookie reach this module (the C head scanner routes them off the fast path).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger("spaces.proxy")

_PREFIXES = (b"__host-", b"__secure-")


class CookieGuard:
    def __init__(self, reserved: Iterable[str]) -> None:
        self.reserved = frozenset(name.lower().encode() for name in reserved)

    def filter_head(self, head: bytes, host: bytes, space_id: str | None = None) -> bytes:
        """``head`` (a response head, status line to the blank line) without the Set-Cookie lines an app on
        ``host`` (lowercased, no port) may not send; the same object when none is dropped."""
        lines = head.split(b"\r\n")
        kept: list[bytes] = []
        for line in lines:
            if line[:11].lower() == b"set-cookie:":
                reason = self.refusal(line[11:], host)
                if reason is not None:
                    # the name says which cookie; the value may be a credential and is never logged
                    log.debug("dropped a Set-Cookie from Space %s: %s", space_id, reason)
                    continue
            kept.append(line)
        return head if len(kept) == len(lines) else b"\r\n".join(kept)

    def refusal(self, value: bytes, host: bytes) -> str | None:
        """Why an app on ``host`` may not set this cookie (a Set-Cookie value), or None when it may."""
        pair, _, attributes = value.partition(b";")
        name = pair.partition(b"=")[0].strip().lower() if b"=" in pair else b""
        bare = name
        for prefix in _PREFIXES:
            if bare.startswith(prefix):
                bare = bare[len(prefix):]
        if bare in self.reserved:
            return f"the name {name[:64].decode('latin-1')!r} is the platform's"
        for attribute in attributes.split(b";"):
            key, _, domain = attribute.partition(b"=")
            if key.strip().lower() == b"domain":
                domain = domain.strip().lower().lstrip(b".")
                if domain and domain != host:
                    return (f"cookie {name[:64].decode('latin-1')!r} has Domain={domain[:100].decode('latin-1')}, "
                            "which covers other hosts than the app's")
        return None
