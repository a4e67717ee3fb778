"""Accounts of the submission service: one login token per student (or instructor) and
assignment, of which only a hash is stored.

A token reads ``<account id>.<secret>``: the id finds the account, the secret's sha256 is
compared with the stored hash in constant time (:func:`hmac.compare_digest`). The secrets are
32 random bytes, so a plain sha256 is enough (nothing to guess, nothing to stretch). Issuing a
token again replaces the hash (the old token stops working) and raises ``generation``, which
voids the sessions made with the old token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from .service_models import Account
from .store import Store, now

ROLES = ("student", "instructor")
ADJECTIVES = (
    "Amber Brave Calm Clever Daring Eager Gentle Golden Happy Jolly Keen Lively Lucky Merry "
    "Nimble Plucky Quick Quiet Rapid Silver Steady Sunny Swift Witty"
).split()
ANIMALS = (
    "Badger Beaver Crane Dolphin Falcon Ferret Fox Gecko Heron Ibex Koala Lemur Lynx Marten "
    "Otter Owl Panda Puffin Raven Seal Stoat Tapir Walrus Wombat"
).split()


@dataclass(frozen=True)
class AccountView:
    """An account without its token hash."""

    id: int
    assignment: str
    student_id: str
    role: str
    generation: int
    pseudonym: str
    on_leaderboard: bool

    @property
    def instructor(self) -> bool:
        return self.role == "instructor"


def token_hash(secret: str) -> str:
    """The stored form of a token's secret (sha256, hex)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


_COLUMNS = (
    Account.id,
    Account.assignment,
    Account.student_id,
    Account.role,
    Account.generation,
    Account.pseudonym,
    Account.on_leaderboard,
)
"""In :class:`AccountView`'s order."""


def _view(row: Account) -> AccountView:
    return AccountView(*(getattr(row, column.key) for column in _COLUMNS))


class Accounts:
    """The accounts of the store's database."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)

    def issue(self, assignment: str, student_id: str, role: str) -> str:
        """A new token for the account (made if new); the account's older token stops working."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        secret = secrets.token_urlsafe(32)
        with self._sessions() as session:
            row = self._find(session, assignment, student_id, role)
            if row is None:
                row = Account(
                    assignment=assignment,
                    student_id=student_id,
                    role=role,
                    token_hash=token_hash(secret),
                    generation=1,
                    pseudonym=self._new_pseudonym(session, assignment),
                    on_leaderboard=True,
                    created=now(),
                )
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:  # made by another process at the same moment
                    session.rollback()
                    return self.issue(assignment, student_id, role)
            else:
                row.token_hash = token_hash(secret)
                row.generation += 1
                session.commit()
            return f"{row.id}.{secret}"

    def _row(self, account_id: int):
        """The account's columns (:data:`_COLUMNS`, then the token hash), or None; plain
        columns, no ORM object: every API call reads its account."""
        with self._engine.connect() as connection:
            return connection.execute(
                select(*_COLUMNS, Account.token_hash).where(Account.id == account_id)
            ).first()

    def verify(self, token: str) -> AccountView | None:
        """The account of ``token``, or None (unknown, revoked or malformed)."""
        account_id, _, secret = str(token).strip().partition(".")
        if not account_id.isdigit() or len(account_id) > 12 or not secret:
            return None
        row = self._row(int(account_id))
        if row is None:
            hmac.compare_digest(token_hash(secret), token_hash(""))  # the same work
            return None
        if not hmac.compare_digest(row.token_hash, token_hash(secret)):
            return None
        return AccountView(*row[: len(_COLUMNS)])

    def get(self, account_id: int) -> AccountView | None:
        row = self._row(account_id)
        return AccountView(*row[: len(_COLUMNS)]) if row is not None else None

    def all(self, assignment: str) -> list[AccountView]:
        with self._sessions() as session:
            rows = session.scalars(
                select(Account).where(Account.assignment == assignment).order_by(Account.id)
            )
            return [_view(row) for row in rows]

    def set_leaderboard(self, account_id: int, shown: bool) -> None:
        with self._sessions() as session:
            session.execute(
                update(Account).where(Account.id == account_id).values(on_leaderboard=shown)
            )
            session.commit()

    @staticmethod
    def _find(session, assignment: str, student_id: str, role: str) -> Account | None:
        return session.scalars(
            select(Account).where(
                Account.assignment == assignment,
                Account.student_id == student_id,
                Account.role == role,
            )
        ).first()

    @staticmethod
    def _new_pseudonym(session, assignment: str) -> str:
        taken = set(
            session.scalars(select(Account.pseudonym).where(Account.assignment == assignment))
        )
        while True:
            name = (
                f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)} "
                f"{secrets.randbelow(90) + 10}"
            )
            if name not in taken:
                return name
