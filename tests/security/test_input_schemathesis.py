"""Schemathesis against the hub's own OpenAPI spec (``/api/openapi.json``) on a live server: no generated request
may get a 5xx, and the server log may show no unhandled error.

Most hub endpoints read their JSON body themselves (the Hub's wire format is not FastAPI models), so the spec has
no request bodies; the test adds to each write operation the body its handler reads (``BODIES``), so the generator
reaches the field checks (wrong types, huge or negative numbers, odd strings, missing fields) and not only path and
query parameters. Path parameters ``ns``/``name`` are
pinned to a Space of the fuzzing user so requests get past the 404. The number of examples is bounded (a couple
of minutes on 2 cores); run more by hand with SPACES_SCHEMATHESIS_EXAMPLES.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import unique

pytestmark = pytest.mark.timeout(600)

_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_KV = {"type": "array", "items": {"type": "object", "properties": {"key": _STR, "value": _STR, "description": _STR},
                                  "required": ["key", "value"]}}
#: the body each write operation reads (path suffix -> properties, required), as the handlers parse it; in the
#: negative mode schemathesis sends what violates these too (wrong types, missing fields)
BODIES = {
    "/api/repos/create": ({"name": _STR, "type": _STR, "sdk": _STR, "private": _BOOL, "hardware": _STR,
                           "sleepTimeSeconds": _INT, "organization": _STR, "secrets": _KV, "variables": _KV},
                          ["name", "sdk"]),
    "/api/repos/move": ({"fromRepo": _STR, "toRepo": _STR, "type": _STR}, ["fromRepo", "toRepo"]),
    "/api/repos/delete": ({"name": _STR, "organization": _STR, "type": _STR}, ["name"]),
    "/sleeptime": ({"seconds": _INT}, ["seconds"]),
    "/hardware": ({"flavor": _STR, "sleepTimeSeconds": _INT}, ["flavor"]),
    "/variables": ({"key": _STR, "value": _STR, "description": _STR}, ["key"]),
    "/secrets": ({"key": _STR, "value": _STR, "description": _STR}, ["key"]),
    "/duplicate": ({"repository": _STR, "private": _BOOL, "hardware": _STR, "sleepTimeSeconds": _INT,
                    "secrets": _KV, "variables": _KV}, ["repository"]),
    "/settings": ({"private": _BOOL, "visibility": _STR}, []),
    "/preupload/{rest}": ({"files": {"type": "array", "items": {"type": "object", "properties": {
        "path": _STR, "sample": _STR, "size": _INT}, "required": ["path"]}}}, ["files"]),
    "/api/validate-yaml": ({"content": _STR, "repoType": _STR}, ["content"]),
    "/objects/batch": ({"operation": _STR, "transfers": {"type": "array", "items": _STR}, "hash_algo": _STR,
                        "objects": {"type": "array", "items": {"type": "object", "properties": {
                            "oid": _STR, "size": _INT}, "required": ["oid", "size"]}}}, ["operation", "objects"]),
    "/info/lfs/verify": ({"oid": _STR, "size": _INT}, ["oid", "size"]),
    "/quota/{name}": ({"key": _STR, "value": _INT}, ["key", "value"]),
}
EXAMPLES = int(os.environ.get("SPACES_SCHEMATHESIS_EXAMPLES", "25"))


def with_bodies(spec: dict) -> dict:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "put", "delete") or "requestBody" in op:
                continue
            found = next((v for suffix, v in BODIES.items() if path.endswith(suffix)), None)
            if found is not None:
                props, required = found
                schema = {"type": "object", "properties": props, "required": required}
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return spec


def test_no_generated_request_gets_a_server_error(server, tmp_path: Path):
    user = unique("fuzz")
    token = server.token(user)
    target = "target"
    r = httpx.post(f"{server.url}/api/repos/create", headers={"authorization": f"Bearer {token}"}, timeout=30,
                   json={"name": target, "type": "space", "sdk": "gradio"})
    assert r.status_code == 200, r.text
    for kind in ("model", "dataset"):  # the model and dataset routes reach a repository of that name too
        r = httpx.post(f"{server.url}/api/repos/create", headers={"authorization": f"Bearer {token}"}, timeout=30,
                       json={"name": target, "type": kind})
        assert r.status_code == 200, r.text
    spec = httpx.get(f"{server.url}/api/openapi.json", timeout=30).json()
    spec_path = tmp_path / "openapi.json"
    spec_path.write_text(json.dumps(with_bodies(spec)))
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.ns" = "{user}"\n"path.name" = "{target}"\n')
    log_start = server.log_size()
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", str(spec_path),
           "--url", server.url, "--checks", "not_a_server_error", "-n", str(EXAMPLES), "--seed", "20",
           "-H", f"Authorization: Bearer {token}", "--phases", "examples,coverage,fuzzing",
           "--request-timeout", "60", "--continue-on-failure", "--workers", "1", "--no-color"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    log = server.log(log_start)
    assert "unhandled error" not in log, log[-6000:]
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout, proc.stdout[-3000:]
