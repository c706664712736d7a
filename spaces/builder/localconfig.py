"""Settings of the local environment builder (``LocalEnvBuilder``): nested into the platform's ``Settings``.

Every field has a default that works on one machine with ``uv`` installed with the platform; see the field
descriptions. Environments are content-addressed, so changing a field here never corrupts an existing one; fields
that change *how* packages are fetched (index, CA bundle) do not change environment addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class LocalBuildSettings(BaseModel):
    envs_dir: Path | None = Field(
        None, description="where built virtual environments live, one folder per content address; "
                          "default {data_dir}/envs")
    uv_cache_dir: Path | None = Field(
        None, description="uv's package cache, shared by all builds; default uv's own (~/.cache/uv). Keep it on "
                          "the same filesystem as envs_dir so installs are hard links")
    uv_path: Path | None = Field(
        None, description="the uv binary; default the one installed with the platform, else `uv` on PATH")
    max_concurrent: int = Field(2, ge=1, description="environment builds that may install at the same time")
    index_url: str | None = Field(None, description="package index for all installs (uv --index-url); default PyPI")
    extra_index_urls: list[str] = Field(
        default_factory=list, description="extra package indexes for all installs (uv --extra-index-url)")
    ca_bundle: Path | None = Field(
        None, description="a PEM CA bundle trusted for index downloads (sets SSL_CERT_FILE for uv), e.g. for a "
                          "TLS-inspecting egress proxy")
    native_tls: bool = Field(False, description="let uv trust the system certificate store (UV_NATIVE_TLS)")
    default_python: str | None = Field(
        None, description="interpreter for Spaces whose README sets no python_version (e.g. 3.11); default the "
                          "platform's own Python version")
    pythons: list[Path] = Field(
        default_factory=list, description="extra Python interpreters builds may use, besides those uv finds and "
                                          "pyenv's versions")
    shared_interpreters: bool = Field(
        True, description="offer only interpreters every user can run (sandboxed Spaces run as their own uids; "
                          "pyenv under a 0700 /root would not start for them)")
    search_pyenv: bool = Field(True, description="also offer the interpreters under $PYENV_ROOT/versions")
    missing_system_packages: Literal["fail", "warn"] = Field(
        "fail", description="what a packages.txt entry not installed on this host does to a local build: fail it "
                            "(the message lists what to apt-get install) or only warn in the build log")
    install_timeout_s: float = Field(1800.0, gt=0, description="a dependency install running longer fails")
