"""Table rows -> API dictionaries. The only place response shapes are built."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, UTC
from typing import Any, Literal, cast, overload

from typing_extensions import TypedDict

from generated import rest

# What the views read: table rows (models/tables.py) and the rows of models/storage's statements.
# Typed Any on purpose: SQLModel declares every primary key Optional and every enumerated column
# str, so the row side is the database's word; what mypy checks here is the answer, each view
# against the generated TypedDict of its schema in openapi/projectvoice.yaml (generated/rest.py).
Row = Any


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
@overload
def iso(dt: datetime | None) -> str | None: ...
def iso(dt: datetime | None) -> str | None:
    """UTC with milliseconds and a Z. Naive values are UTC (SQLite); PostgreSQL's are aware,
    and in UTC already (models/storage/sql.py's sessions), so the common case is one isoformat()."""
    if dt is None:
        return None
    text = dt.isoformat(timespec="milliseconds")
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    if dt.tzinfo is None:
        return text + "Z"
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


# Presence: `seen` maps user ids to the status the caller sees (realtime.presence.statuses,
# one lookup per response); a user missing from it is offline.
Seen = Mapping[int, str] | None


def _seen(seen: Seen, user_id: int) -> rest.Presence:
    # realtime.presence only ever stores the five documented values.
    return cast(rest.Presence, seen.get(user_id, "offline")) if seen else "offline"


_CHOICES = ("online", "idle", "dnd", "invisible")


def status_choice(stored: str | None) -> rest.StatusChoice:
    """users.status holds the chosen status; rows from before presence say `offline` (no choice)."""
    return cast(rest.StatusChoice, stored) if stored in _CHOICES else "online"


def user_private(u: Row, seen: Seen = None) -> rest.User:
    """The account as its owner (and admins) see it: /auth/me, login, register."""
    return {
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "role": u.role,
        "isActive": u.is_active,
        "profilePicture": u.profile_picture,
        "status": _seen(seen, u.id),
        "tag": u.tag,
        "bio": u.bio,
        "createdAt": iso(u.created_at),
        "updatedAt": iso(u.updated_at),
    }


def auth_answer(token: str, u: Row, session_id: int, seen: Seen = None) -> rest.AuthResponse:
    """Register's and login's answer: the token of the session they started."""
    return {"token": token, "user": user_private(u, seen), "sessionId": session_id}


def user_profile(u: Row) -> rest.UserProfile:
    """GET/PUT /users/: the caller's profile."""
    return {
        "id": u.id,
        "username": u.username,
        "profilePicture": u.profile_picture,
        "bio": u.bio,
        "status": status_choice(u.status),
        "createdAt": iso(u.created_at),
        "updatedAt": iso(u.updated_at),
    }


def user_by_id(u: Row, seen: Seen = None) -> rest.UserPublicProfile:
    """GET /users/{id}: `name` as the seed shows, `username` as the contract notes add."""
    return {
        "id": u.id,
        "name": u.username,
        "username": u.username,
        "profilePicture": u.profile_picture,
        "bio": u.bio,
        "status": _seen(seen, u.id),
        "tag": u.tag,
        "createdAt": iso(u.created_at),
        "updatedAt": iso(u.updated_at),
    }


def user_public(u: Row, seen: Seen = None) -> rest.PublicUser:
    """A user as other people see them (members, friends, bans, requests)."""
    return {
        "id": u.id,
        "username": u.username,
        "profilePicture": u.profile_picture,
        "tag": u.tag,
        "status": _seen(seen, u.id),
    }


# ---------------------------------------------------------------- communities

def channel_view(c: Row) -> rest.Channel:
    return {
        "id": c.id,
        "name": c.name,
        "type": c.type,
        "serverId": c.server_id,
        "description": c.description,
        "position": c.position,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
    }


def role_view(r: Row) -> rest.Role:
    return {
        "id": r.id,
        "name": r.name,
        "color": r.color,
        "permissions": str(r.permissions),
        "position": r.position,
        "isHoisted": r.is_hoisted,
        "isMentionable": r.is_mentionable,
        "isEveryone": r.is_everyone,
        "serverId": r.server_id,
    }


def member_role_view(r: Row) -> rest.MemberRoleRef:
    """A role as a member entry lists it (the badge the client draws)."""
    return {"id": r.id, "name": r.name, "color": r.color, "permissions": str(r.permissions), "position": r.position}


def member_view(m: Row, user: Row, roles: Sequence[Row], seen: Seen = None) -> rest.Member:
    """`roles`: the member's assigned roles (never @everyone), highest first."""
    return {
        "id": m.id,
        "userId": m.user_id,
        "serverId": m.server_id,
        "role": m.role,
        "isMuted": m.is_muted,
        "isDeafened": m.is_deafened,
        "joinedAt": iso(m.joined_at),
        "createdAt": iso(m.joined_at),
        "roleIds": sorted(r.id for r in roles),
        "roles": [member_role_view(r) for r in roles],
        "user": user_public(user, seen),
    }


class _ServerFields(TypedDict, closed=True):
    """The fields every server schema (ServerDetail, AdminServer, AdminServerDetail) starts with:
    mypy checks each of them against the schema that spreads these in."""

    id: int
    name: str
    description: str | None
    icon: str | None
    ownerId: int
    isBlocked: bool
    blockReason: str | None
    createdAt: str
    updatedAt: str


def server_view(sv: Row) -> _ServerFields:
    return {
        "id": sv.id,
        "name": sv.name,
        "description": sv.description,
        "icon": sv.icon,
        "ownerId": sv.owner_id,
        "isBlocked": sv.is_blocked,
        "blockReason": sv.block_reason,
        "createdAt": iso(sv.created_at),
        "updatedAt": iso(sv.updated_at),
    }


class _MemberUser:
    """A member row's user columns (models.membership.member_rows) as user_public() reads them."""

    __slots__ = ("id", "username", "profile_picture", "tag", "status")

    def __init__(self, row: Row) -> None:
        self.id, self.username, self.profile_picture = row.user_id, row.username, row.profile_picture
        self.tag, self.status = row.tag, row.status


def member_row_view(row: Row, roles: Sequence[Row], seen: Seen = None) -> rest.Member:
    """A member from a member row (its user's public columns joined in) and its roles."""
    return member_view(row, _MemberUser(row), roles, seen)


def server_detail_view(sv: Row, channels: Iterable[Row], members: Iterable[tuple[Row, Sequence[Row]]],
                       roles: Iterable[Row], seen: Seen = None) -> rest.ServerDetail:
    """`members` is a list of (member row, roles) from models.membership.member_rows."""
    return {
        **server_view(sv),
        "channels": [channel_view(c) for c in channels],
        "members": [member_row_view(m, mroles, seen) for m, mroles in members],
        "roles": [role_view(r) for r in roles],
    }


# ---------------------------------------------------------------- friends and admin (issue 5)

def friend_request_view(f: Row, other: Row, seen: Seen = None) -> rest.FriendRequest:
    """A pending request as listed by GET /friends/requests; `user` is the other party."""
    return {"id": f.id, "user": user_public(other, seen), "createdAt": iso(f.created_at)}


def friendship_record(f: Row) -> rest.FriendRequestRecord:
    return {"id": f.id, "userId": f.user_id, "friendId": f.friend_id, "status": f.status}


def _pages(total: int, limit: int) -> int:
    return (total + limit - 1) // limit


@overload
def page_view(key: Literal["users"], items: list[rest.User], total: int, page: int, limit: int) -> rest.AdminUserPage: ...
@overload
def page_view(key: Literal["servers"], items: list[rest.AdminServer], total: int, page: int,
              limit: int) -> rest.AdminServerPage: ...
def page_view(key: Literal["users", "servers"], items: list[rest.User] | list[rest.AdminServer], total: int, page: int,
              limit: int) -> rest.AdminUserPage | rest.AdminServerPage:
    """A page of the admin panel's users or servers."""
    if key == "users":
        users = cast(list[rest.User], items)
        return {"users": users, "total": total, "page": page, "limit": limit, "totalPages": _pages(total, limit)}
    servers = cast(list[rest.AdminServer], items)
    return {"servers": servers, "total": total, "page": page, "limit": limit, "totalPages": _pages(total, limit)}


def admin_user_view(u: Row, seen: Seen = None) -> rest.User:
    """The admin panel's user: the account fields with email (never the password hash)."""
    return user_private(u, seen)


def admin_server_view(sv: Row, member_count: int, channels: Iterable[Row]) -> rest.AdminServer:
    """`channels`: rows with id, name, type (the panel counts them)."""
    return {**server_view(sv), "memberCount": member_count,
            "channels": [{"id": c.id, "name": c.name, "type": c.type} for c in channels]}


def admin_server_detail_view(detail: rest.ServerDetail) -> rest.AdminServerDetail:
    """A server_detail_view dict plus its member count."""
    return {**detail, "memberCount": len(detail["members"])}


def admin_stats_view(users: Mapping[str, Any], servers: Mapping[str, int], channels: Mapping[str, int],
                     messages: Mapping[str, int]) -> rest.AdminStats:
    by_role = users["byRole"]
    return {
        "users": {"total": users["total"], "active": users["active"], "blocked": users["blocked"],
                  "byRole": {"admin": by_role.get("admin", 0), "moderator": by_role.get("moderator", 0),
                             "user": by_role.get("user", 0)}},
        "servers": {"total": servers["total"], "active": servers["active"], "blocked": servers["blocked"],
                    "withChannels": servers["withChannels"]},
        "channels": {"total": channels["total"], "text": channels["text"], "voice": channels["voice"]},
        "messages": {"total": messages["total"], "today": messages["today"]},
    }


def audit_entry_view(e: Row, actor: Row | None) -> rest.AuditEntry:
    return {
        "id": e.id,
        "actorId": e.actor_id,
        "actor": {"id": actor.id, "username": actor.username} if actor is not None else None,
        "action": e.action,
        "targetType": e.target_type,
        "targetId": e.target_id,
        "serverId": e.server_id,
        "details": e.details,
        "createdAt": iso(e.created_at),
    }


def admin_logs_view(system: str, errors: str, access: str, entries: list[rest.AuditEntry], total: int, page: int,
                    limit: int) -> rest.AdminLogs:
    return {"system": system, "errors": errors, "access": access, "entries": entries, "total": total, "page": page,
            "limit": limit, "totalPages": _pages(total, limit)}


# ---------------------------------------------------------------- invites

def invite_preview_view(i: Row) -> rest.InvitePreview:
    return {
        "id": i.id,
        "token": i.token,
        "serverId": i.server_id,
        "maxUses": i.max_uses,
        "uses": i.uses,
        "expiresAt": iso(i.expires_at),
        "createdAt": iso(i.created_at),
    }


def invite_view(i: Row) -> rest.Invite:
    return {**invite_preview_view(i), "createdBy": i.created_by}


def invite_info_view(i: Row, server: Row) -> rest.InviteInfo:
    """`{invite, server}` as the seed shows, plus the flat fields the desktop client reads."""
    return {
        "invite": invite_preview_view(i),
        "server": {"id": server.id, "name": server.name, "description": server.description, "icon": server.icon},
        "serverId": i.server_id,
        "uses": i.uses,
        "maxUses": i.max_uses,
        "expiresAt": iso(i.expires_at),
    }


# ---------------------------------------------------------------- members and bans

def my_membership_view(m: Row, user: Row, own_roles: Sequence[Row], roles: Iterable[Row], total: int,
                       seen: Seen = None) -> rest.MyMembership:
    """`own_roles`: the assigned roles, highest first; `roles` (listed in full) adds @everyone."""
    return {
        **member_view(m, user, own_roles, seen),
        "roles": [role_view(r) for r in sorted(roles, key=lambda r: (-r.position, r.id))],
        "totalPermissions": str(total),
    }


def ban_view(b: Row, user: Row, seen: Seen = None) -> rest.Ban:
    return {
        "id": b.id,
        "userId": b.user_id,
        "serverId": b.server_id,
        "reason": b.reason,
        "bannedBy": b.banned_by,
        "user": user_public(user, seen),
        "bannedAt": iso(b.banned_at),
    }


# ---------------------------------------------------------------- messages (issue 4)

def message_fields(id: int, content: str, user_id: int, channel_id: int, created_at: datetime, updated_at: datetime,
                   is_edited: bool, username: str, picture: str | None,
                   editor: Row | None = None) -> rest.Message:
    """A message with its author: `avatar` as the seed shows, `profilePicture` as the notes add;
    `editedBy` the last editor when that was not the author (a moderator), else null."""
    return {
        "id": id,
        "content": content,
        "userId": user_id,
        "channelId": channel_id,
        "createdAt": iso(created_at),
        "updatedAt": iso(updated_at),
        "isEdited": bool(is_edited),
        "editedBy": {"id": editor.id, "username": editor.username} if editor is not None else None,
        "user": {"id": user_id, "username": username, "avatar": picture, "profilePicture": picture},
    }


def message_view(m: Row, author: Row, editor: Row | None = None) -> rest.Message:
    return message_fields(m.id, m.content, author.id, m.channel_id, m.created_at, m.updated_at, m.is_edited,
                          author.username, author.profile_picture, editor)


def message_row_view(r: Row) -> rest.Message:
    """A message row with its author's columns (author_username, author_picture) and its
    editor's (edited_by, editor_username; NULL unless a moderator made the last edit) joined in:
    message_fields' shape, built in place (a page builds fifty)."""
    picture = r.author_picture
    return {
        "id": r.id,
        "content": r.content,
        "userId": r.user_id,
        "channelId": r.channel_id,
        "createdAt": iso(r.created_at),
        "updatedAt": iso(r.updated_at),
        "isEdited": bool(r.is_edited),
        "editedBy": None if r.editor_username is None else {"id": r.edited_by, "username": r.editor_username},
        "user": {"id": r.user_id, "username": r.author_username, "avatar": picture, "profilePicture": picture},
    }


def message_page_view(rows: Iterable[Row], total: int, page: int, limit: int) -> rest.MessagePage:
    """`rows` are message rows (message_row_view), already in the page's order."""
    return {"messages": [message_row_view(r) for r in rows], "total": total, "page": page, "limit": limit,
            "totalPages": _pages(total, limit)}


# ---------------------------------------------------------------- sessions (issue 18)

def password_changed_view(token: str, ended: int) -> rest.PasswordChanged:
    return {"message": "Password changed", "token": token, "endedSessions": ended}


def sessions_ended_view(ended: int) -> rest.SessionsEnded:
    return {"message": f"Signed out of {ended} other session(s)", "endedSessions": ended}


def session_view(sess: Row, current: bool) -> rest.Session:
    """A signed-in session as its owner sees it (GET /auth/sessions)."""
    return {
        "id": sess.id,
        "createdAt": iso(sess.created_at),
        "lastSeenAt": iso(sess.last_seen_at),
        "userAgent": sess.user_agent,
        "ip": sess.ip,
        "current": current,
    }
