"""Atheris (libFuzzer, coverage-guided) on the README front-matter parser and the NDJSON commit parser, in bounded
runs: each target runs in its own process (libFuzzer exits the process when done) from a seed corpus that
includes the bombs, with a per-input time limit and a memory limit, so a slow or growing input is a failure too.
See tests/security/fuzz_parsers.py for what each target asserts and how to run it for longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

HERE = Path(__file__).resolve().parent
SEEDS = {
    "frontmatter": {
        "card": "title: Demo\nsdk: gradio\nsdk_version: \"4.44.1\"\ntags: [a, b]\ncustom_headers:\n  x: y\n",
        "aliases": "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\nsdk: static\n",
        "merge": "base: &base {sdk: gradio, title: t}\nother:\n  <<: *base\n  emoji: x\n",
        "deep": "x: " + "[" * 40 + "]" * 40 + "\n",
        "tags": "a: !!binary aGVsbG8=\nb: !!set {x}\nc: .nan\nd: !!timestamp 2020-01-01\n",
    },
    "ndjson": {
        "commit": '{"key":"header","value":{"summary":"s","parentCommit":"abcdef0"}}\n'
                  '{"key":"file","value":{"path":"a/b.txt","encoding":"base64","content":"YQ=="}}\n'
                  '{"key":"deletedFile","value":{"path":"x"}}\n{"key":"deletedFolder","value":{"path":"d/"}}\n',
        "numbers": '{"key":"header","value":{"n":[1e308,-0,12345678901234567890,1.5e-400]}}\n',
        "deep": "[" * 40 + "]" * 40 + "\n",
    },
}
RUNS = {"frontmatter": 4000, "ndjson": 30000}


@pytest.mark.parametrize("target", list(SEEDS))
def test_fuzz_parser(target: str, tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in SEEDS[target].items():
        (corpus / name).write_text(text)
    cmd = [sys.executable, str(HERE / "fuzz_parsers.py"), target, f"-runs={RUNS[target]}", "-max_len=4096",
           "-timeout=5", "-rss_limit_mb=2048", "-seed=1", f"-artifact_prefix={tmp_path}/", str(corpus)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert proc.returncode == 0 and not crashes, (crashes, proc.stderr[-6000:])
    assert f"Done {RUNS[target]} runs" in proc.stderr, proc.stderr[-2000:]
