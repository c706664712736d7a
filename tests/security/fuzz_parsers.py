"""Atheris (libFuzzer) targets for the parsers that read what strangers write: README front matter and NDJSON
commits. Run by tests/security/test_input_fuzz.py with a bounded number of runs; by hand, for longer:

    .venv/bin/python tests/security/fuzz_parsers.py frontmatter -runs=200000 -max_len=4096 [CORPUS_DIR]
    .venv/bin/python tests/security/fuzz_parsers.py ndjson -runs=200000 -max_len=4096 [CORPUS_DIR]

A target fails (libFuzzer writes a crash-* file and exits non-zero) when the parser raises anything but the
platform's own refusal, when the front matter's cardData is not plain JSON, or when one input takes more than
``-timeout`` seconds or the process more than ``-rss_limit_mb`` (the bombs).
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    import yaml  # noqa: F401 - instrumented so coverage guides the fuzzer through the YAML scanner and composer

    from spaces.domain import cardconfig
    from spaces.hub import jsonlimits

from spaces.errors import SpacesError
from spaces.hub.ndjson import parse_ndjson


def frontmatter(data: bytes) -> None:
    text = data.decode("utf-8", "replace")  # plain text, so the seed corpus is read as written
    readme = "---\n" + text + "\n---\n\n# body\n"
    ev = cardconfig.evaluate(readme, {"app.py", "index.html", "Dockerfile"}, "fuzz")  # never raises
    json.dumps(ev.card, allow_nan=False)  # what the database stores and the API serves
    assert isinstance(ev.message, str) and len(ev.message) < 20_000, len(ev.message)
    cardconfig.validate_yaml_for_api(readme)


def ndjson(data: bytes) -> None:
    try:
        parse_ndjson(data)
    except SpacesError as exc:
        assert 400 <= exc.status < 500, exc
    try:
        jsonlimits.loads(data)
    except SpacesError as exc:
        assert exc.status == 400, exc


TARGETS = {"frontmatter": frontmatter, "ndjson": ndjson}


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
