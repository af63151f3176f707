"""Users, API tokens, roles and the access log.

Roles are ordered: a ``resident`` views, an ``attending`` also modifies schemes, a ``chief`` also
approves or rejects locked reports. A token is shown once when it is issued; only its SHA-256 is
stored. Tokens carry 256 random bits, so a slow salted hash would add nothing against guessing and
a plain digest keeps authentication to one index probe.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

from oncoboard.storage import Database

logger = logging.getLogger(__name__)

Role = Literal["resident", "attending", "chief"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
_RANK: Final[dict[str, int]] = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX: Final = "obk_"


class AuthError(ValueError):
    """A user or token operation was refused (unknown user, duplicate name, bad role)."""


@dataclass(frozen=True)
class User:
    """An authenticated user."""

    user_id: int
    name: str
    role: Role

    def can(self, required: Role) -> bool:
        """Whether this user's role includes ``required`` (roles are ordered)."""
        return _RANK[self.role] >= _RANK[required]


@dataclass(frozen=True)
class UserInfo:
    """A user as listed (never with a token)."""

    user_id: int
    name: str
    role: Role
    active: bool
    created_at: datetime
    tokens: int


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _check_role(role: str) -> Role:
    if role not in _RANK:
        raise AuthError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def add_user(db: Database, name: str, role: str) -> tuple[User, str]:
    """Create a user with one API token; returns the user and the token (shown only now)."""
    checked = _check_role(role)
    name = name.strip()
    if not name:
        raise AuthError("a user needs a non-empty name")
    token = _new_token()
    with db.transaction() as conn:
        row = conn.execute(
            "INSERT INTO users (name, role) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING RETURNING user_id",
            (name, checked),
        ).fetchone()
        if row is None:
            raise AuthError(f"a user named {name!r} already exists")
        conn.execute(
            "INSERT INTO api_tokens (user_id, token_sha256, prefix) VALUES (%s, %s, %s)",
            (row["user_id"], hash_token(token), token[:8]),
        )
    logger.info("added user %s with role %s", name, checked)
    return User(user_id=row["user_id"], name=name, role=checked), token


def issue_token(db: Database, name: str) -> str:
    """A further token for an existing user (e.g. after revoking a leaked one)."""
    token = _new_token()
    with db.transaction() as conn:
        row = conn.execute("SELECT user_id FROM users WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise AuthError(f"no user named {name!r}")
        conn.execute(
            "INSERT INTO api_tokens (user_id, token_sha256, prefix) VALUES (%s, %s, %s)",
            (row["user_id"], hash_token(token), token[:8]),
        )
    return token


def revoke_tokens(db: Database, name: str) -> int:
    """Revoke every token of a user; returns how many were active."""
    with db.transaction() as conn:
        cur = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE revoked_at IS NULL"
            " AND user_id = (SELECT user_id FROM users WHERE name = %s)",
            (name,),
        )
        return cur.rowcount


def list_users(db: Database) -> list[UserInfo]:
    """Every user with the number of active tokens."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT u.user_id, u.name, u.role, u.active, u.created_at,"
            " count(t.token_id) FILTER (WHERE t.revoked_at IS NULL) AS tokens"
            " FROM users u LEFT JOIN api_tokens t ON t.user_id = u.user_id"
            " GROUP BY u.user_id ORDER BY u.name"
        ).fetchall()
    return [UserInfo(**row) for row in rows]


def authenticate(db: Database, token: str) -> User | None:
    """The active user owning an unrevoked ``token``, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    with db.connect(autocommit=True) as conn:
        row = conn.execute(
            "UPDATE api_tokens t SET last_used_at = now() FROM users u"
            " WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.user_id = t.user_id AND u.active"
            " RETURNING u.user_id, u.name, u.role",
            (hash_token(token),),
        ).fetchone()
    if row is None:
        return None
    return User(user_id=row["user_id"], name=row["name"], role=row["role"])


@dataclass(frozen=True)
class Access:
    """One access to the service, as logged."""

    method: str
    route: str
    status_code: int
    user: User | None = None
    case_id: str | None = None
    job_id: str | None = None


def log_access(db: Database, access: Access) -> None:
    """Append one entry to the access log."""
    with db.connect(autocommit=True) as conn:
        conn.execute(
            "INSERT INTO access_log (user_id, user_name, method, route, case_id, job_id, status_code)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                access.user.user_id if access.user else None,
                access.user.name if access.user else None,
                access.method,
                access.route,
                access.case_id,
                access.job_id,
                access.status_code,
            ),
        )
