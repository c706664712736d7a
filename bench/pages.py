"""Page latency with 1,000 Spaces in the database (not a test): p50 / p95 per page, against references measured
in the same run (``/api/health``, the cheapest answer the server gives, and ``/api/spaces?limit=24``, the API's
own listing).

Starts the real server with the pages (``tests/pages/pagekit.start_pages_server``), makes one real Space through
``huggingface_hub`` (README + app.py, two commits), then clones it 999 times quickly: rows inserted straight into
the database and the bare git repository copied, with varied titles, colors, SDKs, hardware, stages, likes
and dates. Then each page is fetched sequentially over one keep-alive connection, as a browser would.

    .venv/bin/python bench/pages.py                       # 1000 Spaces, 40 requests per page, SQLite
    .venv/bin/python bench/pages.py --spaces 2000 --requests 100 --database postgres

Bounded: --spaces rows and --requests x pages sequential requests on loopback.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "pages")]
_HF_HOME = tempfile.mkdtemp(prefix="spaces-bench-hf-home-")
os.environ.update(HF_HOME=_HF_HOME, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_IMPLICIT_TOKEN="1")

from benchstats import percentile  # noqa: E402
from huggingface_hub import CommitOperationAdd  # noqa: E402
from pagekit import Web, server_db, start_pages_server  # noqa: E402

COLORS = ["red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"]
EMOJIS = ["🚀", "🎨", "💬", "📈", "🐳", "🎙️", "🖼️", "🔥", "🤖", "🧪"]
SDKS = ["gradio", "streamlit", "docker", "static"]
STAGES = ["RUNNING"] * 6 + ["SLEEPING"] * 2 + ["BUILDING", "BUILD_ERROR", "PAUSED", "RUNTIME_ERROR"]
HARDWARE = ["cpu-basic"] * 6 + ["cpu-upgrade", "t4-small", "a10g-small", "zero-a10g"]


def populate(server, owner: str, source_repo_id: str, count: int) -> None:  # noqa: ANN001
    """Clone the source Space ``count`` times: database rows plus a copy of its bare repository each."""
    from sqlalchemy import select

    from spaces.db.models import Account, Like, Space, new_id

    rng = random.Random(42)
    db = server_db(server)
    now = datetime.now(timezone.utc)
    try:
        with db.session() as s:
            src = s.scalar(select(Space).where(Space.key == source_repo_id.lower()))
            owner_acc = s.scalar(select(Account).where(Account.key == owner.lower()))
            fans = [Account(id=new_id(), name=f"fan{i}-{owner}", key=f"fan{i}-{owner}".lower()) for i in range(20)]
            s.add_all(fans)
            repos = server.data_dir / "repos"
            rows = []
            for i in range(count):
                sid = new_id()
                name = f"space-{i:04d}"
                shutil.copytree(repos / f"{src.id}.git", repos / f"{sid}.git")
                created = now - timedelta(hours=rng.randint(0, 24 * 365))
                rows.append(Space(
                    id=sid, owner_id=owner_acc.id, name=name, repo_id=f"{owner}/{name}", key=f"{owner}/{name}".lower(),
                    subdomain=f"{owner}-{name}".lower(), private=rng.random() < 0.1, sdk=rng.choice(SDKS),
                    card_data={"title": f"Demo app {i}", "emoji": rng.choice(EMOJIS), "colorFrom": rng.choice(COLORS),
                               "colorTo": rng.choice(COLORS), "short_description": f"A benchmark Space number {i}",
                               "sdk": "gradio"},
                    sha=src.sha, hardware=rng.choice(HARDWARE), stage=rng.choice(STAGES), stage_reason="bench",
                    stage_message="synthetic", likes=0, created_by=owner_acc.id, created_at=created,
                    last_modified=created + timedelta(hours=rng.randint(0, 100))))
            s.add_all(rows)
            s.flush()
            likes = []
            for sp in rng.sample(rows, min(300, len(rows))):
                who = rng.sample(fans, rng.randint(1, 8))
                sp.likes = len(who)
                likes += [Like(space_id=sp.id, user_id=f.id, created_at=now - timedelta(days=rng.randint(0, 20)))
                          for f in who]
            s.add_all(likes)
    finally:
        db.engine.dispose()


def measure(client, path: str, n: int, warmup: int = 3) -> list[float]:  # noqa: ANN001
    for _ in range(warmup):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spaces", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    args = ap.parse_args()

    server = start_pages_server(args.database)
    try:
        web = Web(server)
        owner = web.sign_up("benchowner")
        server.user(owner, admin=True)
        api = web.api()
        source = f"{owner}/source"
        api.create_repo(source, repo_type="space", space_sdk="gradio")
        api.create_commit(source, repo_type="space", commit_message="app", operations=[
            CommitOperationAdd("app.py", b"import gradio as gr\n\ngr.Interface(lambda x: x, 'text', 'text').launch()\n"),
            CommitOperationAdd("requirements.txt", b"gradio\n")])
        t0 = time.perf_counter()
        populate(server, owner, source, args.spaces - 1)
        print(f"created {args.spaces} Spaces in {time.perf_counter() - t0:.1f} s "
              f"({args.database}, server {server.url})\n")
        anon = Web(server)
        sid = f"{owner}/space-0500"
        pages = [
            ("reference: GET /api/health", anon, "/api/health"),
            ("reference: GET /api/spaces?limit=24", anon, "/api/spaces?limit=24"),
            ("home / explore (trending)", anon, "/"),
            ("explore sorted by likes", anon, "/spaces?sort=likes"),
            ("explore, page 30", anon, "/spaces?sort=created&p=30"),
            ("search", anon, "/spaces?q=space-05"),
            ("filter sdk + hardware", anon, "/spaces?sdk=gradio&hardware=cpu-basic&sort=updated"),
            ("profile (1000 Spaces)", anon, f"/{owner}"),
            ("Space: app tab", anon, f"/spaces/{sid}"),
            ("Space: files", anon, f"/spaces/{sid}/tree/main"),
            ("Space: file view", anon, f"/spaces/{sid}/blob/main/app.py"),
            ("Space: history", anon, f"/spaces/{sid}/commits/main"),
            ("Space: logs", anon, f"/spaces/{sid}/logs"),
            ("home, signed in", web, "/"),
            ("Space: settings (owner)", web, f"/spaces/{sid}/settings"),
            ("new Space form", web, "/new"),
            ("access tokens", web, "/settings/tokens"),
            ("usage (1000 Spaces)", web, "/settings/usage"),
            ("admin", web, "/admin"),
            ("sign-in form", anon, "/login"),
        ]
        results = []
        for label, client, path in pages:
            t = measure(client.http, path, args.requests)
            results.append((label, path, statistics.median(t), percentile(t, 95)))
        ref = results[0][2]
        width = max(len(r[0]) for r in results)
        print(f"{'page':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'p50 / health':>12}")
        for label, _path, p50, p95 in results:
            print(f"{label:<{width}}  {p50:8.1f}  {p95:8.1f}  {p50 / ref:12.1f}")
        worst = max(results[2:], key=lambda r: r[3])
        print(f"\nslowest page by p95: {worst[0]} ({worst[1]}) p95 {worst[3]:.1f} ms; "
              f"{args.requests} sequential requests per page after 3 warm-ups")
        web.close()
        anon.close()
    finally:
        server.stop()
        shutil.rmtree(_HF_HOME, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
