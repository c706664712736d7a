"""Administrators' quota grants, stored per account (``quota_grants``); see ``quota.apply_grants`` for keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Account, QuotaGrant
from spaces.errors import BadRequest
from spaces.runtime.quota import apply_grants, AccountQuota


def set_grant(s: Session, account: Account, key: str, value: int) -> None:
    try:
        apply_grants(AccountQuota(), {key: value})  # validates the key
    except ValueError as exc:
        raise BadRequest(f"{exc}; use running:<flavor>, running:*, gpu_minutes or credits_micro_usd.") from None
    row = s.scalar(select(QuotaGrant).where(QuotaGrant.account_id == account.id, QuotaGrant.key == key))
    if row is None:
        s.add(QuotaGrant(account_id=account.id, key=key, value=value))
    else:
        row.value = value
    s.flush()
