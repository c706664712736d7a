"""Docker builds: the first build of a Space's image versus the rebuild after a code-only change, in one run.

    .venv/bin/python bench/build_docker.py                 # templates/gradio, first build with --no-cache
    .venv/bin/python bench/build_docker.py --cold          # also empty BuildKit's cache first (uv downloads again)
    .venv/bin/python bench/build_docker.py --sdk streamlit --rounds 3

Needs the engine and base images (infra/docker/setup-engine.sh, infra/images/build-base.sh). The first build is a
factory build (no layer cache); the rebuild is a new commit whose only change is a line appended to the app file,
so the dependency layers come from the cache and only ``COPY . /home/user/app`` runs again. Prints each time
and the ratio rebuild / first build (smaller is better).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "docker")]

from docker_helpers import HOST_CA, plan_from_dir  # noqa: E402
from harness import setup_docker_engine  # noqa: E402

from spaces.builder.image import DockerBuildSettings, DockerImageBuilder  # noqa: E402


def timed_build(builder: DockerImageBuilder, context: Path, space_id: str, *, factory: bool) -> tuple[float, str]:
    lines: list[str] = []
    start = time.perf_counter()
    artifact = builder.build(plan_from_dir(context), space_id=space_id, sha=uuid.uuid4().hex * 2, context=context,
                             variables={}, secrets={}, log=lambda phase, line: lines.append(line), factory=factory)
    return time.perf_counter() - start, artifact.ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdk", default="gradio", choices=["gradio", "streamlit", "docker", "static"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="docker builder prune -af before each first build")
    args = parser.parse_args()
    reason = setup_docker_engine()
    if reason:
        raise SystemExit(reason)
    builder = DockerImageBuilder(DockerBuildSettings(extra_ca_bundle=HOST_CA if HOST_CA.is_file() else None))
    firsts, rebuilds, tags = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            context = Path(tmp) / f"src{i}"
            shutil.copytree(ROOT / "templates" / args.sdk, context)
            space_id = f"bench/{args.sdk}-{uuid.uuid4().hex[:6]}"
            if args.cold:
                subprocess.run(["docker", "builder", "prune", "-af"], check=True, stdout=subprocess.DEVNULL)
            first, tag1 = timed_build(builder, context, space_id, factory=True)
            app = context / (plan_from_dir(context).app_file or "Dockerfile")
            app.write_text(app.read_text() + "\n<!-- code-only change -->\n" if app.suffix == ".html"
                           else app.read_text() + "\n# code-only change\n")
            rebuild, tag2 = timed_build(builder, context, space_id, factory=False)
            firsts.append(first)
            rebuilds.append(rebuild)
            tags += [tag1, tag2]
            print(f"round {i + 1}: first build {first:6.2f} s   code-only rebuild {rebuild:6.2f} s")
    subprocess.run(["docker", "rmi", "-f", *tags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, rebuild = statistics.median(firsts), statistics.median(rebuilds)
    print(f"\n{args.sdk}: first build (no layer cache{', empty BuildKit cache' if args.cold else ''}) "
          f"median {first:.2f} s; code-only rebuild median {rebuild:.2f} s")
    print(f"ratio rebuild / first = {rebuild / first:.3f}  ({first / rebuild:.1f}x faster)")


if __name__ == "__main__":
    main()
