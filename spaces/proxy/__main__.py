"""Run the proxy alone with static routes (benchmarks, debugging): ``python -m spaces.proxy --help``.

Example: ``python -m spaces.proxy --listen 127.0.0.1:8080 --hub 127.0.0.1:9000 --route demo=127.0.0.1:9001``
serves ``demo.localhost:8080`` from port 9001 and every other host from the hub at port 9000. No waking, no
private Spaces: the platform wires those in (``spaces serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

from spaces.proxy.routes import MemoryRouteTable, Route
from spaces.proxy.server import ProxyServer
from spaces.proxy.settings import ProxySettings


def _addr(text: str) -> tuple[str, int] | str:
    if text.startswith("unix:"):
        return text[5:]
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _main(args: argparse.Namespace) -> None:
    routes = MemoryRouteTable()
    for spec in args.route:
        label, _, upstream = spec.partition("=")
        routes.put(label, Route(label, _addr(upstream), "running", title=label))  # type: ignore[arg-type]

    async def waker(space_id: str) -> bool:
        return False

    async def authorize(space_id: str, token: str | None, cookie: str | None) -> bool:
        return False

    proxy = ProxyServer(routes=routes, apps_domain=args.apps_domain, hub_upstream=_addr(args.hub), waker=waker,
                        authorize=authorize, on_upstream_dead=lambda space_id: None, settings=ProxySettings())
    host, port = _addr(args.listen)  # type: ignore[misc]
    await proxy.start(host, port)
    # the start-up heap out of the cyclic collector's reach, as ``spaces serve`` does (spaces/platform.py): the
    # benches then measure the proxy as the platform runs it
    gc.collect()
    gc.freeze()
    print(f"proxy listening on {host}:{proxy.port} ({type(asyncio.get_running_loop()).__module__})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m spaces.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--hub", default="127.0.0.1:8000", help="host:port or unix:/path of the hub")
    parser.add_argument("--apps-domain", default="localhost")
    parser.add_argument("--route", action="append", default=[], help="label=host:port (repeatable)")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = parser.parse_args()
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise SystemExit("uvloop is not installed: pip install 'spaces[fast]'") from None
        else:
            uvloop.run(_main(args))
            return
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
