"""The proxy's settings: a model of its own, nested into ``spaces.settings.Settings`` as ``proxy``.

Set them with ``SPACES_PROXY__<NAME>``, e.g. ``SPACES_PROXY__WAKE_TIMEOUT=60``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProxySettings(BaseModel):
    """Knobs of the front door (``spaces.proxy.ProxyServer``). Defaults suit one machine."""

    forwarded_proto: str = Field(
        "http", description="X-Forwarded-Proto sent upstream (https when a TLS terminator sits in front)"
    )
    trust_forwarded: bool = Field(
        False,
        description="keep the client's X-Forwarded-For/Proto (append to them) instead of replacing them; only "
        "when the proxy is reachable solely through a trusted load balancer",
    )
    hub_hosts: list[str] = Field(
        default_factory=list,
        description="host names always sent to the hub even when they fall under the apps domain (e.g. hub.example.com)",
    )
    wake_timeout: float = Field(
        120.0, description="seconds an API client is held while a sleeping Space wakes; then 503 with Retry-After"
    )
    retry_after: int = Field(5, description="Retry-After seconds on a 503 for a Space that is not ready")
    keepalive_timeout: float = Field(
        75.0, description="close a client connection idle between requests (or before its first) for this many "
        "seconds (nginx's keepalive_timeout)"
    )
    header_timeout: float = Field(
        30.0, ge=0, description="close a client connection whose request head is not complete this many seconds "
        "after its first byte (a slow-loris client trickling a head); 0 = never. A real client sends a head (at "
        "most max_head_bytes) in one write; half of nginx's client_header_timeout, since every slot a slow client "
        "holds counts against max_connections_per_address",
    )
    max_connections_per_address: int = Field(
        256, ge=0, description="open connections one client address may hold (IPv6: one /64); more are answered "
        "429 and closed; 0 = no cap. Not applied with trust_forwarded (every connection then comes from the load "
        "balancer, which should cap its clients itself). Browsers open about 6 per host, a few hosts per page",
    )
    lingering_time: float = Field(
        30.0, ge=0, description="after answering a request whose body was not all read (a 401 or 413 before an "
        "upload), keep reading and dropping the rest for up to this many seconds (5 s without a byte ends it "
        "sooner) so the client reads the answer rather than a reset (nginx's lingering_time)",
    )
    hub_cookies: list[str] = Field(
        default_factory=lambda: ["spaces_session"],
        description="cookie names the hub sets; an app's Set-Cookie for one of them (also with a __Host- or "
        "__Secure- prefix), for cookie_name, or with a Domain attribute other than the app's own host (which "
        "would reach the hub or other Spaces) is dropped before the browser sees it",
    )
    stream_idle_timeout: float = Field(
        3600.0,
        description="close a connection with a request or stream in progress after this many seconds without a "
        "byte in either direction; 0 = never. A stream with traffic is never cut",
    )
    connect_timeout: float = Field(10.0, description="seconds to open a connection to an app or the hub")
    upstream_idle_timeout: float = Field(
        4.0,
        description="reuse a kept-alive connection to an app only if it was idle for less than this many seconds; "
        "below the apps' own keep-alive limit (uvicorn: 5 s) so the proxy rarely writes to a connection the app "
        "is closing",
    )
    max_head_bytes: int = Field(65536, description="largest request head accepted (431 above)")
    auth_cache_ttl: float = Field(60.0, description="seconds an allowed (Space, credential) pair is remembered")
    auth_cache_negative_ttl: float = Field(5.0, description="seconds a refused (Space, credential) pair is remembered")
    cookie_name: str = Field("spaces_app_auth", description="cookie that carries a browser's access to a private Space")
    cookie_max_age: int = Field(3600, description="lifetime of that cookie in seconds (the ticket inside expires too)")
    auth_redirect_url: str | None = Field(
        None,
        description="when set, a browser without credentials opening a private or unknown Space is sent here "
        "(?next=<app URL>) so the hub can check its session and come back through /__spaces/auth?ticket=...",
    )
