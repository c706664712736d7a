"""ORM models. The database holds desired state and the last observed state; nothing here is a cache.

Accounts are users and organizations in one table because they share one namespace: ``alice/demo`` and
``acme/demo`` are looked up the same way, and a user can never take an org's name.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """24 hex characters, the shape of Hugging Face's ids (``SPACE_CREATOR_USER_ID``)."""
    return secrets.token_hex(12)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Account(Base):
    """A user (``type == "user"``) or an organization (``type == "org"``)."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(96))
    key: Mapped[str] = mapped_column(String(96), unique=True)  # lower(name): names are case-insensitive
    type: Mapped[str] = mapped_column(String(8), default="user")
    fullname: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8), default="write")  # admin | write | read


class Token(Base):
    """An access token. Only its SHA-256 is stored; the token itself is shown once, at creation."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="token")
    role: Mapped[str] = mapped_column(String(8), default="write")  # read | write
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16), default="")  # last characters, to tell tokens apart in lists
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    user: Mapped[Account] = relationship(lazy="joined")


class Space(Base):
    """One Space: its desired state (hardware, sleep time, paused) and its last observed stage."""

    __tablename__ = "spaces"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(96))
    repo_id: Mapped[str] = mapped_column(String(200))  # "owner/name" as created
    key: Mapped[str] = mapped_column(String(200), unique=True)  # lower(repo_id)
    subdomain: Mapped[str] = mapped_column(String(63), unique=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    sdk: Mapped[str | None] = mapped_column(String(16), nullable=True)
    card_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sha: Mapped[str | None] = mapped_column(String(40), nullable=True)  # tip of main last seen
    # desired state
    hardware: Mapped[str] = mapped_column(String(32), default="cpu-basic")  # requested flavor
    sleep_time: Mapped[int | None] = mapped_column(Integer, nullable=True)  # seconds; None = flavor default
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # observed state
    hardware_current: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stage: Mapped[str] = mapped_column(String(32), default="NO_APP_FILE")
    stage_reason: Mapped[str] = mapped_column(String(64), default="")
    stage_message: Mapped[str] = mapped_column(Text, default="")
    stage_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # runtime: what was built, what runs, and whether it sleeps
    artifact: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # builder.plan.Artifact
    instance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # runtime Handle of the app
    instance_sha: Mapped[str | None] = mapped_column(String(40), nullable=True)
    asleep: Mapped[bool] = mapped_column(Boolean, default=False)
    restarts: Mapped[int] = mapped_column(Integer, default=0)  # consecutive crashes, for backoff
    retry_at: Mapped[datetime | None] = mapped_column(nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(nullable=True)  # waiting for capacity since
    likes: Mapped[int] = mapped_column(Integer, default=0)
    duplicated_from: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(24), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_modified: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[Account] = relationship(lazy="joined")
    volume_row: Mapped[SpaceVolumes | None] = relationship(lazy="joined", uselist=False, passive_deletes=True,
                                                          cascade="all, delete-orphan", viewonly=False)


class SpaceVariable(Base):
    __tablename__ = "space_variables"
    __table_args__ = (UniqueConstraint("space_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SpaceSecret(Base):
    """A secret: write-only through every API; it reaches only the app's environment."""

    __tablename__ = "space_secrets"
    __table_args__ = (UniqueConstraint("space_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Like(Base):
    __tablename__ = "likes"
    __table_args__ = (UniqueConstraint("space_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LogLine(Base):
    """A build or run log line, kept so that logs can be read after the fact and replayed over SSE."""

    __tablename__ = "log_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # build | run
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[str] = mapped_column(Text)


#: at most one running build per Space, whichever builder process runs it (the database says no to a second)
_ONE_RUNNING = "status = 'running'"


class Build(Base):
    """One build of one commit; the newest row per Space is the one that counts. The table is the build queue that
    every builder process shares: a running build names its ``worker``, which renews ``lease_until`` while it lives
    (see ``spaces.services.builds``)."""

    __tablename__ = "builds"
    __table_args__ = (Index("ux_builds_running_space", "space_id", unique=True, sqlite_where=text(_ONE_RUNNING),
                            postgresql_where=text(_ONE_RUNNING)),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    sha: Mapped[str] = mapped_column(String(40))
    # queued | running | built | failed | superseded
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    artifact: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    factory: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)  # last taken by a worker
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)  # who runs it (while running)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)  # after this, any builder may take it again
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # times taken by a worker


class UsageInterval(Base):
    """A stretch of time a Space ran on a flavor: the unit of billing and of GPU-minute quotas."""

    __tablename__ = "usage_intervals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[str] = mapped_column(String(24), index=True)
    flavor: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class QuotaGrant(Base):
    """An admin's override of an account's quota: running Spaces per flavor, GPU minutes, credits."""

    __tablename__ = "quota_grants"
    __table_args__ = (UniqueConstraint("account_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # e.g. "running:t4-small", "gpu_minutes", "credits_micro_usd"
    value: Mapped[int] = mapped_column(Integer)


class Discussion(Base):
    """A discussion or pull request on a Space, numbered per Space from 1 as on the Hub. A pull request's
    commits live on ``refs/pr/{num}`` in the Space's repository; merging moves ``target_branch``."""

    __tablename__ = "discussions"
    __table_args__ = (UniqueConstraint("space_id", "num"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    num: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True)
    is_pull_request: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | closed | merged | draft
    target_branch: Mapped[str] = mapped_column(String(255), default="main")
    merge_commit: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[Account | None] = relationship(lazy="joined")


class DiscussionEvent(Base):
    """One entry of a discussion's timeline: ``comment``, ``status-change``, ``commit`` or ``title-change``,
    with the Hub's ``data`` shape for its type."""

    __tablename__ = "discussion_events"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    discussion_id: Mapped[int] = mapped_column(ForeignKey("discussions.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[Account | None] = relationship(lazy="joined")


class Bucket(Base):
    """A namespace's persistent storage (the Hub's storage buckets): mounted read-write into Spaces as volumes.
    Its files live on the platform's disk (``spaces.runtime.volumes``), not in git."""

    __tablename__ = "buckets"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(96))
    key: Mapped[str] = mapped_column(String(200), unique=True)  # lower("owner/name")
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    size_mb: Mapped[int] = mapped_column(Integer)  # the most it may hold
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[Account] = relationship(lazy="joined")


class SpaceVolumes(Base):
    """The volumes a Space mounts (``spaces.domain.volumes``), as the Hub's API lists them."""

    __tablename__ = "space_volumes"
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True)
    volumes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
