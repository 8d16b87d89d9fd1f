"""The whole domain as SQLModel tables.

Constraints keep the data honest whatever the handlers do: one membership per user and
server, one friendship row per pair of users, unique invite tokens, usernames and emails
unique case-insensitively. Timestamps are stored in UTC.
"""
from __future__ import annotations

from datetime import datetime, UTC
from typing import Any, Optional, Protocol, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.contract import MESSAGE_MAX_LENGTH, USERNAME_MAX_LENGTH


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Stored(Protocol):
    id: Optional[int]


def stored_id(row: _Stored) -> int:
    """The id of a row read from the database or flushed: the column is Optional only because a
    new object has none yet (for the type checker; nothing is checked at run time)."""
    return cast(int, row.id)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False, **kw)


def _fk(target: str, ondelete: str = "CASCADE", nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None if nullable else ...,
        sa_column_args=[sa.ForeignKey(target, ondelete=ondelete)],
        sa_type=sa.Integer,
        nullable=nullable,
        index=index,
    )


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        sa.Index("uq_users_username_lower", sa.func.lower(sa.text("username")), unique=True),
        sa.Index("uq_users_email_lower", sa.func.lower(sa.text("email")), unique=True),
        {"sqlite_autoincrement": True},
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=USERNAME_MAX_LENGTH)
    email: str = Field(max_length=254)
    password_hash: str = Field(max_length=255)
    role: str = Field(default="user", max_length=16, index=True)  # user | moderator | admin
    is_active: bool = Field(default=True, index=True)
    profile_picture: Optional[str] = Field(default=None, max_length=2048)
    bio: Optional[str] = Field(default=None, max_length=500)
    # The chosen presence: online (no choice), idle, dnd, invisible; older rows say offline,
    # read as online (realtime/presence.py, models/views.py status_choice).
    status: str = Field(default="online", max_length=16)
    tag: str = Field(max_length=8)
    # Bumped to revoke every token issued before (block, password change, deletion).
    token_version: int = Field(default=0)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Server(SQLModel, table=True):
    __tablename__ = "servers"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    description: Optional[str] = Field(default=None, max_length=1000)
    icon: Optional[str] = Field(default=None, max_length=2048)
    # The single source of truth for ownership.
    owner_id: int = _fk("users.id")
    is_blocked: bool = Field(default=False, index=True)
    block_reason: Optional[str] = Field(default=None, max_length=500)
    blocked_at: Optional[datetime] = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Channel(SQLModel, table=True):
    __tablename__ = "channels"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Optional[int] = Field(default=None, primary_key=True)
    server_id: int = _fk("servers.id")
    name: str = Field(max_length=100)
    type: str = Field(max_length=8)  # text | voice
    description: Optional[str] = Field(default=None, max_length=1000)
    position: int = Field(default=0)
    # Messages in the channel, kept by database triggers on `messages` (migration 0002) in the
    # same transaction as every insert and delete, cascades included: `total` of a message page
    # never needs a COUNT over the channel.
    message_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Message(SQLModel, table=True):
    """A channel message.

    Migration 0002 adds, outside these models: triggers keeping `channels.message_count`, and
    the search index (SQLite: the FTS5 external-content table `messages_fts` with its triggers;
    PostgreSQL: the GIN index `ix_messages_search` on (channel_id, to_tsvector('simple', content))).
    A migration that rebuilds this table (SQLite batch mode) must recreate those triggers.
    """

    __tablename__ = "messages"
    __table_args__ = (
        # Page 1, the `before` cursor and offset pages all walk this index.
        sa.Index("ix_messages_channel_id_id", "channel_id", "id"),
        # Only the messages a moderator edited (migration 0003_domain): deleting an account
        # finds the ones it edited without scanning every message.
        sa.Index("ix_messages_edited_by", "edited_by", postgresql_where=sa.text("edited_by IS NOT NULL"),
                 sqlite_where=sa.text("edited_by IS NOT NULL")),
        {"sqlite_autoincrement": True},
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    channel_id: int = _fk("channels.id", index=False)
    user_id: int = _fk("users.id")
    content: str = Field(max_length=MESSAGE_MAX_LENGTH)
    is_edited: bool = Field(default=False)
    # The last editor when that was not the author (a moderator); None after the author's own
    # edit, and when the editor's account is deleted.
    edited_by: Optional[int] = _fk("users.id", ondelete="SET NULL", nullable=True, index=False)
    created_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()


class ServerMember(SQLModel, table=True):
    __tablename__ = "server_members"
    __table_args__ = (sa.UniqueConstraint("server_id", "user_id", name="uq_member_server_user"), {"sqlite_autoincrement": True})

    id: Optional[int] = Field(default=None, primary_key=True)
    server_id: int = _fk("servers.id", index=False)
    user_id: int = _fk("users.id")
    # The seed's coarse role, kept consistent with the Member/Moderator/Admin/Owner roles.
    role: str = Field(default="member", max_length=16)  # member | moderator | admin | owner
    is_muted: bool = Field(default=False)
    is_deafened: bool = Field(default=False)
    joined_at: datetime = _ts()


class Role(SQLModel, table=True):
    __tablename__ = "roles"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Optional[int] = Field(default=None, primary_key=True)
    server_id: int = _fk("servers.id")
    name: str = Field(max_length=100)
    color: str = Field(default="#99AAB5", max_length=7)
    permissions: int = Field(default=0, sa_type=sa.BigInteger)
    position: int = Field(default=0)
    is_hoisted: bool = Field(default=False)
    is_mentionable: bool = Field(default=False)
    # @everyone is recognised by this flag, never by its name.
    is_everyone: bool = Field(default=False)
    # member | moderator | admin | owner for the default roles that mirror a member's coarse
    # `role` field; None for roles people create.
    preset: Optional[str] = Field(default=None, max_length=16)
    created_at: datetime = _ts()


class MemberRole(SQLModel, table=True):
    __tablename__ = "member_roles"

    member_id: int = Field(sa_column_args=[sa.ForeignKey("server_members.id", ondelete="CASCADE")],
                           primary_key=True, sa_type=sa.Integer)
    role_id: int = Field(sa_column_args=[sa.ForeignKey("roles.id", ondelete="CASCADE")],
                         primary_key=True, sa_type=sa.Integer, index=True)


class Ban(SQLModel, table=True):
    __tablename__ = "bans"
    __table_args__ = (sa.UniqueConstraint("server_id", "user_id", name="uq_ban_server_user"), {"sqlite_autoincrement": True})

    id: Optional[int] = Field(default=None, primary_key=True)
    server_id: int = _fk("servers.id", index=False)
    user_id: int = _fk("users.id")
    reason: Optional[str] = Field(default=None, max_length=500)
    banned_by: Optional[int] = _fk("users.id", ondelete="SET NULL", nullable=True, index=False)
    banned_at: datetime = _ts()


class Invite(SQLModel, table=True):
    __tablename__ = "invites"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Optional[int] = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)
    server_id: int = _fk("servers.id")
    created_by: Optional[int] = _fk("users.id", ondelete="SET NULL", nullable=True, index=False)
    max_uses: Optional[int] = Field(default=None)
    uses: int = Field(default=0)
    expires_at: Optional[datetime] = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = _ts()


class Friendship(SQLModel, table=True):
    """A friend request (pending) or a friendship (accepted): one row per pair of users."""

    __tablename__ = "friendships"
    __table_args__ = (
        sa.UniqueConstraint("pair_low", "pair_high", name="uq_friendship_pair"),
        sa.CheckConstraint("pair_low < pair_high", name="ck_friendship_pair_order"),
        {"sqlite_autoincrement": True},
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = _fk("users.id")  # who asked
    friend_id: int = _fk("users.id")  # who was asked
    # min/max of the two ids: the unique pair whatever the direction.
    pair_low: int = Field()
    pair_high: int = Field()
    status: str = Field(default="pending", max_length=16)  # pending | accepted
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class UserBlock(SQLModel, table=True):
    __tablename__ = "user_blocks"
    __table_args__ = (sa.UniqueConstraint("blocker_id", "blocked_id", name="uq_block_pair"), {"sqlite_autoincrement": True})

    id: Optional[int] = Field(default=None, primary_key=True)
    blocker_id: int = _fk("users.id", index=False)
    blocked_id: int = _fk("users.id")
    created_at: datetime = _ts()


class AuditLog(SQLModel, table=True):
    """Administrative and moderation actions, written in the same transaction as the action."""

    __tablename__ = "audit_log"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Optional[int] = Field(default=None, primary_key=True)
    actor_id: Optional[int] = _fk("users.id", ondelete="SET NULL", nullable=True)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: Optional[int] = Field(default=None)
    server_id: Optional[int] = Field(default=None, index=True)
    details: Optional[dict[str, Any]] = Field(default=None, sa_type=sa.JSON)
    created_at: datetime = _ts(index=True)


class AuthSession(SQLModel, table=True):
    """A signed-in session: one per login or registration. Its id is the `sid` claim of the
    token issued for it; the token works only while this row exists (ending a session deletes
    it, and deleting the account deletes them all)."""

    __tablename__ = "auth_sessions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = _fk("users.id")
    user_agent: Optional[str] = Field(default=None, max_length=512)
    ip: Optional[str] = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    last_seen_at: datetime = _ts()
