"""Server roles through the HTTP API: list, create, edit, delete, assign, unassign, hierarchy."""
from __future__ import annotations

import pytest

from models.permissions import EVERYONE_BITS, Perm
from tests.support import create_server, join_server, unique

MODERATOR_BITS = (EVERYONE_BITS | Perm.MANAGE_CHANNELS | Perm.MANAGE_MESSAGES | Perm.KICK_MEMBERS
                  | Perm.BAN_MEMBERS | Perm.MUTE_MEMBERS | Perm.DEAFEN_MEMBERS | Perm.MOVE_MEMBERS
                  | Perm.CREATE_INSTANT_INVITE)


# ---------------------------------------------------------------------------------- helpers
def roles_by_name(api, acct, sid) -> dict[str, dict]:
    r = api.get(f"/servers/{sid}/roles", acct.token)
    assert r.status_code == 200, r.text
    return {role["name"]: role for role in r.json()}


def members_by_user(api, acct, sid) -> dict[int, dict]:
    r = api.get(f"/servers/{sid}", acct.token)
    assert r.status_code == 200, r.text
    return {m["userId"]: m for m in r.json()["members"]}


def member_of(api, acct, sid, who) -> dict:
    return members_by_user(api, acct, sid)[who.id]


def assign_path(sid, mid, rid) -> str:
    return f"/servers/{sid}/roles/members/{mid}/roles/{rid}"


def assign(api, acct, sid, mid, rid):
    return api.post(assign_path(sid, mid, rid), acct.token)


def new_role(api, acct, sid, **body) -> dict:
    body.setdefault("name", unique("role"))
    r = api.post(f"/servers/{sid}/roles", acct.token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def denied(r, code: str, status: int = 403) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    text = body["error"].lower()
    assert "unauthorized" not in text and "invalid token" not in text and "token expired" not in text


@pytest.fixture
def team(api):
    """A server owned by `owner` with an Admin, a Moderator, a second Moderator and two plain members."""
    owner, admin, mod, mod2, member, member2 = (api.register() for _ in range(6))
    server = create_server(api, owner)
    sid = server["id"]
    join_server(api, owner, sid, admin, mod, mod2, member, member2)
    roles = roles_by_name(api, owner, sid)
    ms = members_by_user(api, owner, sid)
    for acct, role in ((admin, "Admin"), (mod, "Moderator"), (mod2, "Moderator")):
        assert assign(api, owner, sid, ms[acct.id]["id"], roles[role]["id"]).status_code == 201
    t = type("Team", (), {})()
    t.sid, t.owner, t.admin, t.mod, t.mod2, t.member, t.member2 = sid, owner, admin, mod, mod2, member, member2
    t.roles = roles
    t.mid = {a.id: ms[a.id]["id"] for a in (owner, admin, mod, mod2, member, member2)}
    return t


def give_moderators_manage_roles(api, t) -> None:
    bits = int(t.roles["Moderator"]["permissions"]) | Perm.MANAGE_ROLES
    r = api.patch(f"/servers/{t.sid}/roles/{t.roles['Moderator']['id']}", t.owner.token,
                  json={"permissions": str(bits)})
    assert r.status_code == 200 and r.json()["permissions"] == str(bits), r.text


# ---------------------------------------------------------------------------------- list
def test_list_roles_highest_first_with_ties_by_id(api, alice, bob):
    server = create_server(api, alice)
    sid = server["id"]
    a = new_role(api, alice, sid, position=2)
    b = new_role(api, alice, sid, position=2)
    r = api.get(f"/servers/{sid}/roles", alice.token)
    assert r.status_code == 200
    listed = r.json()
    assert [x["position"] for x in listed] == [4, 3, 2, 2, 2, 1, 0]
    ids_at_2 = [x["id"] for x in listed if x["position"] == 2]
    assert ids_at_2 == sorted(ids_at_2) and {a["id"], b["id"]} <= set(ids_at_2)
    assert listed[-1]["isEveryone"] is True and listed[-1]["name"] == "@everyone"
    assert [x for x in listed if x["isEveryone"]] == [listed[-1]]
    assert all(x["serverId"] == sid for x in listed)
    denied(api.get(f"/servers/{sid}/roles", bob.token), "not_a_member")
    assert api.get("/servers/2147483647/roles", alice.token).status_code == 404
    assert api.get(f"/servers/{sid}/roles").status_code == 401


def test_plain_member_can_list_roles(api, team):
    r = api.get(f"/servers/{team.sid}/roles", team.member.token)
    assert r.status_code == 200 and len(r.json()) == 5


# ---------------------------------------------------------------------------------- create
def test_create_role_defaults_and_nothing_shifts(api, alice):
    sid = create_server(api, alice)["id"]
    before = roles_by_name(api, alice, sid)
    r = api.post(f"/servers/{sid}/roles", alice.token, json={"name": "  Helpers  "})
    assert r.status_code == 201
    role = r.json()
    assert role == {"id": role["id"], "name": "Helpers", "color": "#99AAB5", "permissions": "0",
                    "position": 1, "isHoisted": False, "isMentionable": False, "isEveryone": False,
                    "serverId": sid}
    after = roles_by_name(api, alice, sid)
    assert {n: x["position"] for n, x in before.items()} == {n: after[n]["position"] for n in before}
    assert after["Helpers"]["id"] == role["id"]


def test_create_role_with_every_field(api, alice):
    sid = create_server(api, alice)["id"]
    bits = Perm.KICK_MEMBERS | Perm.MODERATE_MEMBERS
    role = new_role(api, alice, sid, name="Guards", color="#FF0000", permissions=str(bits), position=3,
                    isHoisted=True, isMentionable=True)
    assert (role["name"], role["color"], role["permissions"], role["position"], role["isHoisted"],
            role["isMentionable"]) == ("Guards", "#FF0000", str(bits), 3, True, True)
    as_number = new_role(api, alice, sid, permissions=bits)
    assert as_number["permissions"] == str(bits)


@pytest.mark.parametrize("body", [
    {},
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 101},
    {"name": "r", "color": "red"},
    {"name": "r", "color": "#12345"},
    {"name": "r", "position": 0},
    {"name": "r", "position": -1},
    {"name": "r", "position": 1001},
    {"name": "r", "position": "2"},
    {"name": "r", "permissions": -1},
    {"name": "r", "permissions": "-1"},
    {"name": "r", "permissions": "abc"},
    {"name": "r", "permissions": "12a"},
    {"name": "r", "permissions": ""},
    {"name": "r", "permissions": "1e3"},
    {"name": "r", "permissions": 1.5},
    {"name": "r", "permissions": True},
    {"name": "r", "permissions": None},
    {"name": "r", "permissions": 2 ** 64},
    {"name": "r", "permissions": 10 ** 30},
    {"name": "r", "permissions": str(2 ** 64)},
    {"name": "r", "permissions": 1 << 50},
    {"name": "r", "permissions": "１２"},
    {"name": "r", "isHoisted": "yes"},
])
def test_create_role_validation(api, alice, body):
    sid = create_server(api, alice)["id"]
    r = api.post(f"/servers/{sid}/roles", alice.token, json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "code"}
    assert len(roles_by_name(api, alice, sid)) == 5


def test_create_role_requires_membership_and_manage_roles(api, team, bob):
    sid = team.sid
    denied(api.post(f"/servers/{sid}/roles", bob.token, json={"name": "x"}), "not_a_member")
    denied(api.post(f"/servers/{sid}/roles", team.member.token, json={"name": "x"}), "missing_permission")
    denied(api.post(f"/servers/{sid}/roles", team.mod.token, json={"name": "x"}), "missing_permission")
    assert api.post("/servers/2147483647/roles", team.owner.token, json={"name": "x"}).status_code == 404
    assert len(roles_by_name(api, team.owner, sid)) == 5


def test_create_role_position_must_be_below_own_highest(api, team):
    sid = team.sid
    assert new_role(api, team.admin, sid, position=2)["position"] == 2
    denied(api.post(f"/servers/{sid}/roles", team.admin.token, json={"name": "eq", "position": 3}), "role_hierarchy")
    denied(api.post(f"/servers/{sid}/roles", team.admin.token, json={"name": "up", "position": 1000}), "role_hierarchy")
    assert new_role(api, team.owner, sid, position=1000)["position"] == 1000  # the owner is above every role


def test_create_role_bits_must_be_held(api, team):
    give_moderators_manage_roles(api, team)
    sid = team.sid
    ok = new_role(api, team.mod, sid, permissions=str(Perm.KICK_MEMBERS | Perm.MANAGE_ROLES))
    assert ok["permissions"] == str(Perm.KICK_MEMBERS | Perm.MANAGE_ROLES)
    for bits in (Perm.ADMINISTRATOR, Perm.MANAGE_GUILD, Perm.KICK_MEMBERS | Perm.MANAGE_GUILD,
                 Perm.MANAGE_NICKNAMES, Perm.VIEW_AUDIT_LOG, Perm.MODERATE_MEMBERS):
        r = api.post(f"/servers/{sid}/roles", team.mod.token, json={"name": "x", "permissions": bits})
        denied(r, "permission_escalation")
    # An ADMINISTRATOR holder holds every bit.
    assert new_role(api, team.admin, sid, permissions=Perm.MODERATE_MEMBERS | Perm.MANAGE_GUILD)


# ---------------------------------------------------------------------------------- update
def test_owner_updates_a_role(api, alice):
    sid = create_server(api, alice)["id"]
    role = new_role(api, alice, sid)
    r = api.patch(f"/servers/{sid}/roles/{role['id']}", alice.token,
                  json={"name": "Renamed", "color": "#00ff00", "permissions": "3214400", "position": 4,
                        "isHoisted": True, "isMentionable": True})
    assert r.status_code == 200
    assert r.json() == {**role, "name": "Renamed", "color": "#00ff00", "permissions": "3214400",
                        "position": 4, "isHoisted": True, "isMentionable": True}
    assert roles_by_name(api, alice, sid)["Renamed"] == r.json()
    # An empty body changes nothing.
    r = api.patch(f"/servers/{sid}/roles/{role['id']}", alice.token, json={})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"


@pytest.mark.parametrize("body", [
    {"name": ""}, {"name": "  "}, {"color": "blue"}, {"position": 0}, {"position": 1001},
    {"permissions": "-1"}, {"permissions": -5}, {"permissions": "x1"}, {"permissions": 2 ** 63},
    {"permissions": 1 << 45},
])
def test_update_role_validation(api, alice, body):
    sid = create_server(api, alice)["id"]
    role = new_role(api, alice, sid, permissions=1)
    r = api.patch(f"/servers/{sid}/roles/{role['id']}", alice.token, json=body)
    assert r.status_code == 400, r.text
    assert roles_by_name(api, alice, sid)[role["name"]] == role


def test_everyone_role_bits_and_colour_editable_but_not_name_or_position(api, alice):
    sid = create_server(api, alice)["id"]
    everyone = roles_by_name(api, alice, sid)["@everyone"]
    path = f"/servers/{sid}/roles/{everyone['id']}"
    bits = EVERYONE_BITS | Perm.CREATE_INSTANT_INVITE
    r = api.patch(path, alice.token, json={"permissions": bits, "color": "#123456", "isMentionable": True})
    assert r.status_code == 200
    assert r.json() == {**everyone, "permissions": str(bits), "color": "#123456", "isMentionable": True}
    denied(api.patch(path, alice.token, json={"position": 2}), "everyone_role", 400)
    denied(api.patch(path, alice.token, json={"name": "everybody"}), "everyone_role", 400)
    # Sending what it already has is not a change.
    assert api.patch(path, alice.token, json={"name": "@everyone"}).status_code == 200
    after = roles_by_name(api, alice, sid)["@everyone"]
    assert after["position"] == 0 and after["name"] == "@everyone" and after["isEveryone"]


def test_everyone_role_edits_still_follow_hierarchy_and_grant_rules(api, team):
    give_moderators_manage_roles(api, team)
    path = f"/servers/{team.sid}/roles/{team.roles['@everyone']['id']}"
    r = api.patch(path, team.mod.token, json={"permissions": EVERYONE_BITS | Perm.KICK_MEMBERS})
    assert r.status_code == 200
    denied(api.patch(path, team.mod.token, json={"permissions": EVERYONE_BITS | Perm.ADMINISTRATOR}),
           "permission_escalation")
    denied(api.patch(path, team.member.token, json={"color": "#000000"}), "missing_permission")


def test_update_role_hierarchy(api, team):
    sid, admin = team.sid, team.admin
    roles = team.roles
    # Own highest role and anything above it: no.
    denied(api.patch(f"/servers/{sid}/roles/{roles['Admin']['id']}", admin.token, json={"color": "#000000"}),
           "role_hierarchy")
    denied(api.patch(f"/servers/{sid}/roles/{roles['Owner']['id']}", admin.token, json={"name": "Mine"}),
           "role_hierarchy")
    # Below: yes, but not up to its own level.
    path = f"/servers/{sid}/roles/{roles['Moderator']['id']}"
    assert api.patch(path, admin.token, json={"color": "#010203"}).status_code == 200
    denied(api.patch(path, admin.token, json={"position": 3}), "role_hierarchy")
    denied(api.patch(path, admin.token, json={"position": 500}), "role_hierarchy")
    assert api.patch(path, admin.token, json={"position": 2}).json()["position"] == 2
    after = roles_by_name(api, team.owner, sid)
    assert after["Admin"] == roles["Admin"] and after["Owner"] == roles["Owner"]
    assert after["Moderator"]["position"] == 2 and after["Moderator"]["color"] == "#010203"


def test_update_role_only_checks_added_bits(api, team):
    """A moderator with MANAGE_ROLES may add held bits to a lower role that already carries a bit
    they lack (the owner gave it MANAGE_NICKNAMES), and may not add bits they lack."""
    give_moderators_manage_roles(api, team)
    low = new_role(api, team.owner, team.sid, permissions=Perm.MANAGE_NICKNAMES)
    path = f"/servers/{team.sid}/roles/{low['id']}"
    denied(api.post(f"/servers/{team.sid}/roles", team.mod.token,
                    json={"name": "x", "permissions": Perm.MANAGE_NICKNAMES}), "permission_escalation")
    bits = Perm.MANAGE_NICKNAMES | Perm.KICK_MEMBERS
    r = api.patch(path, team.mod.token, json={"permissions": str(bits)})
    assert r.status_code == 200 and r.json()["permissions"] == str(bits)
    for extra in (Perm.ADMINISTRATOR, Perm.MANAGE_GUILD, Perm.MODERATE_MEMBERS):
        denied(api.patch(path, team.mod.token, json={"permissions": bits | extra}), "permission_escalation")
    assert roles_by_name(api, team.owner, team.sid)[low["name"]]["permissions"] == str(bits)


def test_update_role_requires_manage_roles(api, team, bob):
    path = f"/servers/{team.sid}/roles/{team.roles['Member']['id']}"
    denied(api.patch(path, team.member.token, json={"name": "x"}), "missing_permission")
    denied(api.patch(path, team.mod.token, json={"name": "x"}), "missing_permission")
    denied(api.patch(path, bob.token, json={"name": "x"}), "not_a_member")
    assert api.patch(f"/servers/{team.sid}/roles/2147483647", team.owner.token, json={"name": "x"}).status_code == 404


def test_preset_role_keeps_its_meaning_after_rename(api, team):
    path = f"/servers/{team.sid}/roles/{team.roles['Moderator']['id']}"
    assert api.patch(path, team.owner.token, json={"name": "Helpers"}).status_code == 200
    mid = team.mid[team.member.id]
    assert assign(api, team.owner, team.sid, mid, team.roles["Moderator"]["id"]).status_code == 201
    assert member_of(api, team.owner, team.sid, team.member)["role"] == "moderator"


# ---------------------------------------------------------------------------------- delete
def test_delete_custom_role(api, alice):
    sid = create_server(api, alice)["id"]
    role = new_role(api, alice, sid)
    me = member_of(api, alice, sid, alice)
    assert assign(api, alice, sid, me["id"], role["id"]).status_code == 201
    r = api.delete(f"/servers/{sid}/roles/{role['id']}", alice.token)
    assert r.status_code == 204 and r.content == b""
    assert role["name"] not in roles_by_name(api, alice, sid)
    assert role["id"] not in member_of(api, alice, sid, alice)["roleIds"]
    assert api.delete(f"/servers/{sid}/roles/{role['id']}", alice.token).status_code == 404


def test_everyone_role_is_recognised_by_flag_not_name(api, alice):
    sid = create_server(api, alice)["id"]
    everyone = roles_by_name(api, alice, sid)["@everyone"]
    denied(api.delete(f"/servers/{sid}/roles/{everyone['id']}", alice.token), "everyone_role", 400)
    impostor = new_role(api, alice, sid, name="@everyone")
    assert impostor["isEveryone"] is False
    assert api.delete(f"/servers/{sid}/roles/{impostor['id']}", alice.token).status_code == 204
    assert [r for r in api.get(f"/servers/{sid}/roles", alice.token).json() if r["isEveryone"]] == [everyone]


def test_preset_roles_cannot_be_deleted(api, team):
    """Member/Moderator/Admin/Owner define the member `role` field: not deletable, even by the owner."""
    sid = team.sid
    for name in ("Member", "Moderator", "Admin", "Owner"):
        r = api.delete(f"/servers/{sid}/roles/{team.roles[name]['id']}", team.owner.token)
        denied(r, "preset_role", 400)
    # Renamed, a preset role is still one.
    path = f"/servers/{sid}/roles/{team.roles['Moderator']['id']}"
    assert api.patch(path, team.owner.token, json={"name": "Custom"}).status_code == 200
    denied(api.delete(path, team.owner.token), "preset_role", 400)
    assert len(roles_by_name(api, team.owner, sid)) == 5
    assert member_of(api, team.owner, sid, team.mod)["role"] == "moderator"
    # Re-roling still works through them.
    r = api.put(f"/serverMembers/{sid}/members/{team.mid[team.member.id]}", team.owner.token,
                json={"role": "moderator"})
    assert r.status_code == 200 and r.json()["role"] == "moderator"
    assert team.roles["Moderator"]["id"] in r.json()["roleIds"]


def test_delete_role_hierarchy_and_permission(api, team, bob):
    sid = team.sid
    for name in ("Admin", "Owner"):
        denied(api.delete(f"/servers/{sid}/roles/{team.roles[name]['id']}", team.admin.token), "role_hierarchy")
    for acct in (team.member, team.mod):
        denied(api.delete(f"/servers/{sid}/roles/{team.roles['Member']['id']}", acct.token), "missing_permission")
    denied(api.delete(f"/servers/{sid}/roles/{team.roles['Member']['id']}", bob.token), "not_a_member")
    assert set(roles_by_name(api, team.owner, sid)) == {"@everyone", "Member", "Moderator", "Admin", "Owner"}
    low = new_role(api, team.owner, sid, position=2)
    assert api.delete(f"/servers/{sid}/roles/{low['id']}", team.admin.token).status_code == 204


# ---------------------------------------------------------------------------------- assign
def test_assign_and_unassign_updates_roles_and_coarse_role(api, team):
    sid, owner = team.sid, team.owner
    mid = team.mid[team.member.id]
    r = assign(api, owner, sid, mid, team.roles["Moderator"]["id"])
    assert r.status_code == 201 and r.json() == {"message": "Роль успешно назначена."}
    m = member_of(api, owner, sid, team.member)
    assert m["role"] == "moderator" and team.roles["Moderator"]["id"] in m["roleIds"]
    assert assign(api, owner, sid, mid, team.roles["Admin"]["id"]).status_code == 201
    assert member_of(api, owner, sid, team.member)["role"] == "admin"
    r = api.delete(assign_path(sid, mid, team.roles["Admin"]["id"]), owner.token)
    assert r.status_code == 204 and r.content == b""
    assert member_of(api, owner, sid, team.member)["role"] == "moderator"
    assert api.delete(assign_path(sid, mid, team.roles["Moderator"]["id"]), owner.token).status_code == 204
    m = member_of(api, owner, sid, team.member)
    assert m["role"] == "member" and m["roleIds"] == [team.roles["Member"]["id"]]
    # Removing a role the member does not have is a no-op.
    assert api.delete(assign_path(sid, mid, team.roles["Moderator"]["id"]), owner.token).status_code == 204


def test_assign_is_idempotent_and_accepts_empty_json_body(api, team):
    sid = team.sid
    mid = team.mid[team.member.id]
    role = new_role(api, team.owner, sid)
    for _ in range(3):
        r = api.post(assign_path(sid, mid, role["id"]), team.owner.token, json={})
        assert r.status_code == 201
    r = api.post(assign_path(sid, mid, role["id"]), team.owner.token, content=b"",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert member_of(api, team.owner, sid, team.member)["roleIds"].count(role["id"]) == 1


def test_everyone_cannot_be_assigned_or_unassigned(api, team):
    path = assign_path(team.sid, team.mid[team.member.id], team.roles["@everyone"]["id"])
    denied(api.post(path, team.owner.token), "everyone_role", 400)
    denied(api.delete(path, team.owner.token), "everyone_role", 400)


def test_assign_needs_manage_roles(api, team, bob):
    sid = team.sid
    path = assign_path(sid, team.mid[team.member2.id], team.roles["Member"]["id"])
    denied(api.post(path, team.member.token), "missing_permission")
    denied(api.post(path, team.mod.token), "missing_permission")
    denied(api.delete(path, team.mod.token), "missing_permission")
    denied(api.post(path, bob.token), "not_a_member")
    assert api.post(assign_path(2147483647, 1, 1), team.owner.token).status_code == 404


def test_assign_role_hierarchy(api, team):
    give_moderators_manage_roles(api, team)
    sid, mod = team.sid, team.mod
    low = new_role(api, team.owner, sid, position=1)
    # A role below the moderator, to a member below the moderator: yes, both ways.
    assert assign(api, mod, sid, team.mid[team.member.id], low["id"]).status_code == 201
    assert api.delete(assign_path(sid, team.mid[team.member.id], low["id"]), mod.token).status_code == 204
    # Their own level and above: no.
    for name in ("Moderator", "Admin", "Owner"):
        denied(assign(api, mod, sid, team.mid[team.member.id], team.roles[name]["id"]), "role_hierarchy")
    # Members at or above them: no, not even with a low role.
    for target in (team.mod2, team.admin, team.owner):
        denied(assign(api, mod, sid, team.mid[target.id], low["id"]), "member_hierarchy")
    assert assign(api, team.owner, sid, team.mid[team.mod2.id], low["id"]).status_code == 201
    denied(api.delete(assign_path(sid, team.mid[team.mod2.id], low["id"]), mod.token), "member_hierarchy")
    # The owner is above everyone, the admin included.
    denied(assign(api, team.admin, sid, team.mid[team.owner.id], low["id"]), "member_hierarchy")
    denied(api.delete(assign_path(sid, team.mid[team.owner.id], team.roles["Owner"]["id"]), team.admin.token),
           "role_hierarchy")
    assert member_of(api, team.owner, sid, team.owner)["role"] == "owner"


def test_self_assign_below_own_top_is_allowed(api, team):
    give_moderators_manage_roles(api, team)
    sid, mod = team.sid, team.mod
    low = new_role(api, team.owner, sid, position=1)
    me = team.mid[mod.id]
    assert assign(api, mod, sid, me, low["id"]).status_code == 201
    assert low["id"] in member_of(api, mod, sid, mod)["roleIds"]
    assert api.delete(assign_path(sid, me, low["id"]), mod.token).status_code == 204
    denied(assign(api, mod, sid, me, team.roles["Admin"]["id"]), "role_hierarchy")
    denied(api.delete(assign_path(sid, me, team.roles["Moderator"]["id"]), mod.token), "role_hierarchy")


def test_assign_ids_unknown_or_from_another_server_are_404(api, team):
    sid, owner = team.sid, team.owner
    other = create_server(api, owner)
    other_roles = roles_by_name(api, owner, other["id"])
    other_member = member_of(api, owner, other["id"], owner)
    mid = team.mid[team.member.id]
    for path in (assign_path(sid, mid, other_roles["Member"]["id"]),
                 assign_path(sid, other_member["id"], team.roles["Member"]["id"]),
                 assign_path(sid, mid, 2147483647),
                 assign_path(sid, 2147483647, team.roles["Member"]["id"]),
                 assign_path(other["id"], mid, other_roles["Member"]["id"])):
        for method in (api.post, api.delete):
            r = method(path, owner.token)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["code"] in ("role_not_found", "member_not_found")
    assert other_roles["Member"]["id"] not in member_of(api, owner, sid, team.member)["roleIds"]
    assert member_of(api, owner, other["id"], owner)["roleIds"] == other_member["roleIds"]


def test_assign_bad_ids_are_400(api, team):
    for path in (f"/servers/{team.sid}/roles/members/0/roles/1",
                 f"/servers/{team.sid}/roles/members/1/roles/-1", f"/servers/{team.sid}/roles/members/1/roles/{2 ** 40}"):
        assert api.post(path, team.owner.token).status_code == 400, path


# ---------------------------------------------------------------------------------- cross-server
def test_role_of_another_server_is_404_on_edit_and_delete(api, alice, bob):
    mine = create_server(api, alice)["id"]
    theirs = create_server(api, bob)["id"]
    their_role = new_role(api, bob, theirs)
    also_mine = create_server(api, alice)["id"]
    my_other_role = new_role(api, alice, also_mine)
    for role in (their_role, my_other_role):
        r = api.patch(f"/servers/{mine}/roles/{role['id']}", alice.token, json={"name": "pwned", "permissions": 8})
        assert r.status_code == 404 and r.json()["code"] == "role_not_found"
        r = api.delete(f"/servers/{mine}/roles/{role['id']}", alice.token)
        assert r.status_code == 404 and r.json()["code"] == "role_not_found"
    assert roles_by_name(api, bob, theirs)[their_role["name"]] == their_role
    assert roles_by_name(api, alice, also_mine)[my_other_role["name"]] == my_other_role
    # Through the right server but as a non-member: 403.
    denied(api.patch(f"/servers/{theirs}/roles/{their_role['id']}", alice.token, json={"name": "x"}), "not_a_member")


# ---------------------------------------------------------------------------------- audit
def test_role_actions_are_audited(api, alice, admin):
    sid = create_server(api, alice)["id"]
    role = new_role(api, alice, sid)
    me = member_of(api, alice, sid, alice)
    assert api.patch(f"/servers/{sid}/roles/{role['id']}", alice.token, json={"color": "#abcdef"}).status_code == 200
    assert assign(api, alice, sid, me["id"], role["id"]).status_code == 201
    assert api.delete(assign_path(sid, me["id"], role["id"]), alice.token).status_code == 204
    assert api.delete(f"/servers/{sid}/roles/{role['id']}", alice.token).status_code == 204
    r = api.get("/admin/logs", admin.token, params={"actorId": alice.id, "limit": 100})
    assert r.status_code == 200
    mine = [e for e in r.json()["entries"] if e["action"].startswith("role.")]
    assert [e["action"] for e in reversed(mine)] == ["role.create", "role.update", "role.assign",
                                                    "role.unassign", "role.delete"]
    assert all(e["serverId"] == sid for e in mine)
    assert mine[-1]["targetId"] == role["id"] and mine[1]["targetId"] == me["id"]
    assert mine[1]["details"]["roleId"] == role["id"]


# ---------------------------------------------------------------------------------- races
def test_parallel_assigns_leave_one_row_and_a_consistent_coarse_role(api, team):
    from concurrent.futures import ThreadPoolExecutor

    sid, owner = team.sid, team.owner
    mid = team.mid[team.member.id]
    paths = [assign_path(sid, mid, team.roles[name]["id"]) for name in ("Moderator", "Admin")] * 5
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda p: api.post(p, owner.token).status_code, paths))
    assert statuses == [201] * 10
    m = member_of(api, owner, sid, team.member)
    assert sorted(m["roleIds"]) == sorted({team.roles[n]["id"] for n in ("Member", "Moderator", "Admin")})
    assert m["role"] == "admin"
    paths = [f"{assign_path(sid, mid, team.roles[name]['id'])}" for name in ("Moderator", "Admin")] * 3
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda p: api.delete(p, owner.token).status_code, paths))
    assert statuses == [204] * 6
    m = member_of(api, owner, sid, team.member)
    assert m["roleIds"] == [team.roles["Member"]["id"]] and m["role"] == "member"
