"""Time to refuse a README front-matter bomb, side by side with parsing an ordinary README, in one run.

    python bench/frontmatter_bomb.py [--runs 50]

Cases, each through ``cardconfig.evaluate`` (what every commit and push runs on README.md):

* ``ordinary``: the README the hub seeds a new gradio Space with, plus the usual optional keys;
* ``alias-bomb``: ~1 KB whose aliases nest ten levels deep (9**10 strings once expanded; on the unbounded parser
  the server grew past 13 GiB);
* ``bracket-bomb``: 5,000 nested ``[`` (a RecursionError, i.e. a 500, on the unbounded parser);
* ``max-size``: an alias-free front matter just under the 64 KiB size limit (the slowest README still parsed).

Prints p50 and max in ms per case, and each case's p50 as a ratio of the ordinary one. Goal: a bomb is refused in
< 50 ms. The unbounded parser is not run side by side: it does not finish (it is the 13 GiB case).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchstats import percentile  # noqa: E402

from spaces.domain.cardconfig import MAX_FRONT_MATTER_BYTES, evaluate  # noqa: E402
from spaces.services.spaces import seed_readme  # noqa: E402


def alias_bomb(levels: int = 10) -> str:
    lines = ["sdk: gradio", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "---\n" + "\n".join(lines) + "\n---\n"


def ordinary() -> str:
    extra = "short_description: Reverse text\ntags: [nlp, demo]\nlicense: mit\n"
    return seed_readme("hello", "gradio").replace("pinned: false\n", "pinned: false\n" + extra)


def max_size() -> str:
    body, i = ["sdk: gradio", "tags:"], 0
    while sum(len(x) + 1 for x in body) < MAX_FRONT_MATTER_BYTES - 40:
        body.append(f"  - tag-number-{i}")
        i += 1
    return "---\n" + "\n".join(body) + "\n---\n"


def time_case(text: str, runs: int) -> tuple[list[float], str]:
    samples, message = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        ev = evaluate(text, {"app.py"}, "bench")
        samples.append((time.perf_counter() - t) * 1000)
        message = f"{ev.stage.value if ev.stage else 'ok'}: {ev.message[:90]}"
    return samples, message


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    cases = {"ordinary": ordinary(), "alias-bomb": alias_bomb(), "bracket-bomb": "---\nsdk: gradio\nx: "
             + "[" * 5000 + "]" * 5000 + "\n---\n", "max-size": max_size()}
    results = {name: time_case(text, args.runs) for name, text in cases.items()}
    base = percentile(results["ordinary"][0], 50)
    print(f"{'case':<14}{'bytes':>8}{'p50 ms':>10}{'max ms':>10}{'x ordinary':>12}  outcome")
    for name, (samples, message) in results.items():
        p50 = percentile(samples, 50)
        print(f"{name:<14}{len(cases[name]):>8}{p50:>10.2f}{max(samples):>10.2f}{p50 / base:>12.1f}  {message}")
    worst_bomb = max(max(results[n][0]) for n in ("alias-bomb", "bracket-bomb"))
    print(f"slowest bomb refusal: {worst_bomb:.2f} ms (goal < 50 ms): {'PASS' if worst_bomb < 50 else 'FAIL'}")


if __name__ == "__main__":
    main()
