"""The front door: routes {subdomain}.{apps domain} to running Spaces and everything else to the hub.

Modules: ``server`` (``ProxyServer``: start/close, the lifecycle and the injected callables), ``routes``
(``Route``, the ``RouteTable`` contract, ``MemoryRouteTable``), ``redis_routes`` (``RedisRouteTable``),
``activity`` (last activity per Space, for the sleeper), ``gate`` (per-request decision: forward, answer, wake,
authorise), ``connection`` (moving bytes, back-pressure, upgrades), ``http1`` (strict head parsing and body
framing), ``pages`` (404 / waiting / error pages and JSON), ``settings`` (``ProxySettings``).
``python -m spaces.proxy`` runs it alone with static routes (benchmarks).
"""
