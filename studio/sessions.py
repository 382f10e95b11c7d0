"""Review page sessions and share links.

A person signs in to the review page with an API token (the login form); the server keeps
a ``WebSession`` row under the sha256 of a fresh random secret and hands the secret back as
an HttpOnly, SameSite=Strict cookie. The token itself never goes into the cookie, so a
cookie that leaks is one session that can be ended, not the token. A session has the
token's project and role, and ends when it expires (``SESSION_HOURS``), at sign-out, or
when its token is revoked.

A share link opens one job's page for an outside reviewer who has no token: one role
(viewer, editor or approver) on one job, until it expires or is revoked. Opening it starts a
session scoped to that job (``Principal.job_id``): every other job reads as unknown to it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from studio.auth import Principal, hash_secret, verify
from studio.db import ApiToken, Job, ShareLink, WebSession, new_id, now
from studio.errors import StudioError, quote

SESSION_HOURS = 12
SHARE_ROLES = ("viewer", "editor", "approver")  # not admin: a link is for reviewing one job
SHARE_SCHEME = "shr_"
MAX_SHARE_DAYS = 30


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _new_session(s: Session, *, project: str, role: str, name: str, token_id: str | None = None,
                 share_id: str | None = None, job_id: str | None = None) -> str:
    secret = secrets.token_urlsafe(32)
    at = now()
    s.add(WebSession(id=hash_secret(secret), token_id=token_id, share_id=share_id, name=name, project=project,
                     role=role, job_id=job_id, created_at=at, expires_at=at + timedelta(hours=SESSION_HOURS)))
    return secret


def sign_in(engine: Engine, token_secret: str) -> tuple[str, Principal] | None:
    """A session for a live token: (the cookie's secret, who); None for an unknown or
    revoked token."""
    principal = verify(engine, token_secret.strip())
    if principal is None:
        return None
    with Session(engine) as s:
        secret = _new_session(s, project=principal.project, role=principal.role, name=principal.name,
                              token_id=principal.token_id)
        s.commit()
    return secret, principal


def principal(engine: Engine, cookie_secret: str) -> Principal | None:
    """Who a session cookie is: None when unknown, expired, signed out, or its token or
    share link was revoked (or the link expired) since."""
    if not cookie_secret or len(cookie_secret) > 200:
        return None
    with Session(engine) as s:
        row = s.get(WebSession, hash_secret(cookie_secret))
        if row is None or row.revoked_at is not None or _utc(row.expires_at) <= now():
            return None
        if row.token_id is not None:
            token = s.get(ApiToken, row.token_id)
            if token is None or token.revoked_at is not None:
                return None
            return Principal(token_id=row.token_id, name=row.name, project=row.project, role=row.role)
        share = s.get(ShareLink, row.share_id) if row.share_id else None
        if share is None or share.revoked_at is not None or _utc(share.expires_at) <= now():
            return None
        return Principal(token_id=share.id, name=row.name, project=row.project, role=row.role, job_id=row.job_id)


def sign_out(engine: Engine, cookie_secret: str) -> None:
    with Session(engine) as s:
        row = s.get(WebSession, hash_secret(cookie_secret))
        if row is not None and row.revoked_at is None:
            row.revoked_at = now()
            s.add(row)
            s.commit()


def create_share(engine: Engine, *, job_id: str, role: str, created_by: str, name: str = "",
                 days: float = 7.0) -> tuple[ShareLink, str]:
    """A share link's row and its secret (shown once): ``role`` on job ``job_id``."""
    if role not in SHARE_ROLES:
        raise StudioError(f"role {quote(role)} cannot be shared", fix=f"share as one of: {', '.join(SHARE_ROLES)}",
                          field="role")
    if not 0 < days <= MAX_SHARE_DAYS:
        raise StudioError(f"a share link for {days:g} days", fix=f"give 1 to {MAX_SHARE_DAYS} days", field="days")
    secret = SHARE_SCHEME + secrets.token_urlsafe(32)
    with Session(engine, expire_on_commit=False) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise StudioError(f"no job {quote(job_id)}", fix="list jobs to find its id", field="job_id")
        at = now()
        row = ShareLink(id=new_id("shr"), secret_hash=hash_secret(secret), job_id=job_id, project=job.project,
                        role=role, name=name, created_by=created_by, created_at=at,
                        expires_at=at + timedelta(days=days))
        s.add(row)
        s.commit()
    return row, secret


def open_share(engine: Engine, secret: str) -> tuple[str, Principal, str] | None:
    """A session from a share link: (the cookie's secret, who, the job); None when the link
    is unknown, expired or revoked."""
    if not secret.startswith(SHARE_SCHEME) or len(secret) > 200:
        return None
    with Session(engine) as s:
        from sqlmodel import select

        row = s.exec(select(ShareLink).where(ShareLink.secret_hash == hash_secret(secret))).first()
        if row is None or row.revoked_at is not None or _utc(row.expires_at) <= now():
            return None
        name = row.name or f"shared {row.role}"
        cookie = _new_session(s, project=row.project, role=row.role, name=name, share_id=row.id, job_id=row.job_id)
        s.commit()
        return cookie, Principal(token_id=row.id, name=name, project=row.project, role=row.role,
                                 job_id=row.job_id), row.job_id


def revoke_share(engine: Engine, share_id: str) -> ShareLink:
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(ShareLink, share_id)
        if row is None:
            raise StudioError(f"no share link {quote(share_id)}", fix="list the job's share links", field="share_id")
        if row.revoked_at is None:
            row.revoked_at = now()
            s.add(row)
            s.commit()
        return row
