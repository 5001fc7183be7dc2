"""Operator accounts and console sessions: argon2 password hashes, lock-out after repeated failures,
sessions that expire, a CSRF token per session."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from helpline.store import ROLES, Operator, OperatorSession, utcnow

MAX_FAILURES = 5
LOCK_MINUTES = 15
SESSION_HOURS = 12
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verified against when the username does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class AuthError(Exception):
    """A login or account request refused; `code` is machine-readable."""

    def __init__(self, message: str, code: str, retry_after: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Identity:
    """The operator behind a request."""

    id: int
    username: str
    role: str
    csrf: str

    @property
    def sees_all(self) -> bool:
        """Supervisors and admins see and reassign every case."""
        return self.role in ("supervisor", "admin")


def create_operator(sessions: sessionmaker, username: str, password: str, role: str) -> int:
    """Create an account; raises AuthError for an unknown role, a short password or a taken name."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}", "bad_role")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must be at least {MIN_PASSWORD} characters", "weak_password")
    if not username or len(username) > 64 or not username.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise AuthError("username: letters, digits, _ - . only", "bad_username")
    with sessions.begin() as session:
        operator = Operator(username=username, password_hash=_hasher.hash(password), role=role, failed_logins=0)
        session.add(operator)
        try:
            session.flush()
        except IntegrityError:
            raise AuthError(f"username {username} is taken", "taken") from None
        return operator.id


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(sessions: sessionmaker, username: str, password: str) -> tuple:
    """Check the password; return (session token for the cookie, Identity). Raises AuthError.

    A failure is counted (and a lock-out set) in its own committed transaction before the error is
    raised, so that raising does not roll the count back."""
    now = utcnow()
    refusal: Optional[AuthError] = None
    with sessions.begin() as session:
        operator = session.execute(select(Operator).where(Operator.username == username)).scalar_one_or_none()
        if operator is None:
            try:
                _hasher.verify(_DUMMY_HASH, password)
            except VerificationError:
                pass
            refusal = AuthError("wrong username or password", "bad_credentials")
        elif operator.locked_until and operator.locked_until > now:
            retry = int((operator.locked_until - now).total_seconds()) + 1
            refusal = AuthError("too many failed logins: try again later", "locked", retry)
        else:
            try:
                _hasher.verify(operator.password_hash, password)
            except (VerificationError, InvalidHashError):
                operator.failed_logins += 1
                if operator.failed_logins >= MAX_FAILURES:
                    operator.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
                    operator.failed_logins = 0
                refusal = AuthError("wrong username or password", "bad_credentials")
        if refusal is None:
            operator.failed_logins = 0
            operator.locked_until = None
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
            session.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))
            session.add(OperatorSession(token_hash=_token_hash(token), operator_id=operator.id, csrf=csrf,
                                        expires_at=now + dt.timedelta(hours=SESSION_HOURS)))
            identity = Identity(operator.id, operator.username, operator.role, csrf)
    if refusal is not None:
        raise refusal
    return token, identity


def identify(sessions: sessionmaker, token: Optional[str]) -> Optional[Identity]:
    """The operator of a session cookie, or None when it is missing, unknown or expired."""
    if not token:
        return None
    with sessions() as session:
        row = session.get(OperatorSession, _token_hash(token))
        if row is None or row.expires_at < utcnow():
            return None
        return Identity(row.operator.id, row.operator.username, row.operator.role, row.csrf)


def logout(sessions: sessionmaker, token: str) -> None:
    with sessions.begin() as session:
        session.execute(delete(OperatorSession).where(OperatorSession.token_hash == _token_hash(token)))
