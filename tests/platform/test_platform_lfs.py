"""A Space whose example files are Git LFS objects runs with the real files, not the pointers git holds."""

from __future__ import annotations

import os

import platform_kit as kit


def test_a_static_space_serves_its_lfs_image(platform, alice, make_space) -> None:  # noqa: ANN001
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    files = kit.space_files(**{"README.md": kit.readme("static", app_file="index.html"),
                               "index.html": b"<!doctype html><img src='example.png'>",
                               ".gitattributes": b"*.png filter=lfs diff=lfs merge=lfs -text\n",
                               "example.png": png})
    repo_id = make_space(alice, files, sdk="static")
    (info,) = alice.api.get_paths_info(repo_id, ["example.png"], repo_type="space")
    assert info.lfs is not None and info.size == len(png)  # stored as an LFS object, a pointer in git
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    r = kit.app_get(platform.server, repo_id, "/example.png")
    assert r.status_code == 200 and r.content == png
