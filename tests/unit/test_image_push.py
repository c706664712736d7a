"""The image builder's push step (``DockerBuildSettings.push``), with a stand-in docker CLI: the message a failed
push gives, and that nothing is pushed unless asked. The real push to a real registry, pulled by a real node, is
tested in tests/kubernetes_live/test_platform.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces.builder.image import DockerBuildSettings, DockerImageBuilder, ImageBuildFailed


def fake_cli(tmp_path: Path, script: str) -> str:
    cli = tmp_path / "docker"
    cli.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/calls\n{script}\n")
    cli.chmod(0o755)
    return str(cli)


def test_a_failed_push_is_a_build_error_naming_the_registrys_answer(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, 'echo "Get http://127.0.0.1:5123/v2/: connection refused" >&2; exit 1')
    builder = DockerImageBuilder(DockerBuildSettings(push=True, docker_cli=cli))
    lines: list[str] = []
    with pytest.raises(ImageBuildFailed, match="Pushing 127.0.0.1:5123/spaces/x:1 to its registry failed: "
                                               "Get http://127.0.0.1:5123/v2/: connection refused") as info:
        builder._push("127.0.0.1:5123/spaces/x:1", lambda phase, line: lines.append(line))
    assert info.value.code == "ImagePushFailed"
    assert (tmp_path / "calls").read_text() == "push 127.0.0.1:5123/spaces/x:1\n"


def test_nothing_is_pushed_unless_asked(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "exit 1")
    DockerImageBuilder(DockerBuildSettings(docker_cli=cli))._push("spaces/x:1", lambda *a: None)
    assert not (tmp_path / "calls").exists()
