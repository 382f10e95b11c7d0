"""API tokens and roles (the server's ``Authorization: Bearer`` tokens).

A token is one role on one project. Its secret (``studio_`` + 43 random URL-safe
characters, 256 bits) is shown once, when ``create`` makes it; the database keeps only
its sha256 and its first characters (``prefix``): the prefix finds the row, and the
hashes are compared with ``hmac.compare_digest``, so how long a wrong guess takes says
nothing about the right one.

Roles: ``viewer`` reads its project's jobs, events and attempts; ``editor`` is a viewer
that also submits and cancels (later picks and annotates); ``approver`` is a viewer that
also signs off; ``admin`` may do everything. Editor and approver are siblings: neither
includes the other. There are no tokens for all projects: a job of usage class
``experiment`` must be visible to its own project only, and a token that saw every
project would break that.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio.db import ApiToken, new_id, now, who
from studio.errors import StudioError, quote

__all__ = ["GRANTS", "PREFIX_CHARS", "ROLES", "ApiToken", "Principal", "allows", "create", "describe",
           "hash_secret", "list_tokens", "revoke", "roles_for", "verify"]

ROLES = ("viewer", "editor", "approver", "admin")
# Which roles' tokens may do what a route that needs ROLE does.
GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset(ROLES),
    "editor": frozenset({"editor", "admin"}),
    "approver": frozenset({"approver", "admin"}),
    "admin": frozenset({"admin"}),
}
SCHEME = "studio_"
PREFIX_CHARS = len(SCHEME) + 8  # "studio_" and 8 characters of the random part
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # a brief's project code (studio.brief)
# last_used_at is written at most this often per token: a write on every request would
# make every read a writing transaction.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the token's id, name, project and role. A review page
    session opened from a share link is scoped to one job (``job_id``): every other job
    reads as unknown to it."""

    token_id: str
    name: str
    project: str
    role: str
    job_id: str | None = None

    def allows(self, needed: str) -> bool:
        return allows(self.role, needed)


def allows(role: str, needed: str) -> bool:
    """Whether a ``role`` token may do what needs ``needed``."""
    return role in GRANTS[needed]


def roles_for(needed: str) -> list[str]:
    """The roles that may do what needs ``needed``, weakest first (for messages)."""
    return [r for r in ROLES if r in GRANTS[needed]]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check(project: str, role: str) -> None:
    if role not in ROLES:
        raise StudioError(f"role {quote(role)} is not one of {', '.join(ROLES)}",
                          fix=f"give --role {' | '.join(ROLES)}", field="role")
    if project == "*" or not PROJECT_RE.match(project):
        raise StudioError(f"project {quote(project)} is not a project code",
                          fix="give the project code briefs use (lower-case letters, digits, '.', '_', '-'); "
                              "a token is for one project: there are no tokens for all projects",
                          field="project")


def create(engine: Engine, *, project: str, role: str, name: str = "",
           created_by: str | None = None) -> tuple[ApiToken, str]:
    """Make a token; returns its row and the secret. The secret is in no row: this is the
    only time anyone sees it."""
    _check(project, role)
    secret = SCHEME + secrets.token_urlsafe(32)
    row = ApiToken(id=new_id("tok"), name=name, project=project, role=role, token_hash=hash_secret(secret),
                   prefix=secret[:PREFIX_CHARS], created_at=now(), created_by=created_by or who())
    with Session(engine, expire_on_commit=False) as s:
        s.add(row)
        s.commit()
    return row, secret


def list_tokens(engine: Engine, *, project: str | None = None,
                include_revoked: bool = True) -> list[ApiToken]:
    """Tokens, oldest first (no secrets: there are none to show)."""
    query = select(ApiToken)
    if project is not None:
        query = query.where(ApiToken.project == project)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(query.order_by(ApiToken.created_at, ApiToken.id)).all())  # type: ignore[arg-type]


def revoke(engine: Engine, token_id: str) -> ApiToken:
    """Revoke a token for good (revoking it again changes nothing); its row stays."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise StudioError(f"no token {quote(token_id)}", fix="`studio token list` shows the tokens' ids",
                              field="token")
        if row.revoked_at is None:
            row.revoked_at = now()
            s.add(row)
            s.commit()
        return row


def verify(engine: Engine, secret: str) -> Principal | None:
    """The token's principal when ``secret`` is a live (known, unrevoked) token; else None."""
    if not secret.startswith(SCHEME) or len(secret) < PREFIX_CHARS + 8:
        return None
    digest = hash_secret(secret)
    with Session(engine, expire_on_commit=False) as s:
        rows = s.exec(select(ApiToken).where(ApiToken.prefix == secret[:PREFIX_CHARS])).all()
    found: ApiToken | None = None
    for row in rows:  # all of them, so the time taken does not depend on which one matched
        if hmac.compare_digest(row.token_hash.encode(), digest.encode()):
            found = row
    if found is None or found.revoked_at is not None:
        return None
    _touch(engine, found)
    return Principal(token_id=found.id, name=found.name, project=found.project, role=found.role)


def _touch(engine: Engine, row: ApiToken) -> None:
    at = now()
    last = row.last_used_at
    if last is not None and _utc(last) > at - TOUCH_EVERY:
        return
    # One UPDATE and no read before it in its transaction: on SQLite a read-then-write
    # transaction fails at once if another writer committed in between.
    with engine.begin() as conn:
        conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=at))  # type: ignore[arg-type]


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def describe(row: ApiToken) -> dict[str, Any]:
    """A token as `studio token list --json` shows it (nothing secret)."""
    def iso(dt: datetime | None) -> str | None:
        return _utc(dt).isoformat(timespec="seconds") if dt is not None else None

    return {"id": row.id, "name": row.name, "project": row.project, "role": row.role, "prefix": row.prefix,
            "created_at": iso(row.created_at), "created_by": row.created_by,
            "revoked_at": iso(row.revoked_at), "last_used_at": iso(row.last_used_at)}
