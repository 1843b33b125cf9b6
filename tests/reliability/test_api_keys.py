"""API keys over HTTP: admin-only creation, owner-scoped listing and revocation (then 401), hashes only."""

from typing import Any

import sqlalchemy as sa

from tests.service.factories import SYNTH


def test_admin_creates_lists_and_revokes_keys(api: Any) -> None:
    admin = api.key("root", admin=True)
    resp = api.client.post("/api/v1/api-keys", json={"name": "ci", "owner": "carol"}, headers=admin)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    key = created["key"]
    assert created["owner"] == "carol" and not created["is_admin"] and key.startswith(created["prefix"])
    carol = {"Authorization": f"Bearer {key}"}
    ds = api.client.post("/api/v1/datasets", json=SYNTH, headers=carol)
    assert ds.status_code == 201
    assert api.client.get(f"/api/v1/datasets/{ds.json()['id']}", headers=admin).status_code == 200
    assert api.client.get(f"/api/v1/datasets/{ds.json()['id']}", headers=api.key("dave")).status_code == 404
    # listings never contain a key; carol sees only carol's keys, the admin sees all
    listed = api.client.get("/api/v1/api-keys", headers=carol).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]] and all("key" not in k for k in listed)
    assert {k["owner"] for k in api.client.get("/api/v1/api-keys", headers=admin).json()["items"]} == {"root", "carol", "dave"}
    # only the hash is stored
    with api.maker() as s:
        stored = s.execute(sa.text("SELECT * FROM api_keys")).mappings().all()
    assert key not in repr(stored)
    # revoke: then 401 on every request, and revoking again is harmless
    revoked = api.client.post(f"/api/v1/api-keys/{created['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    gone = api.client.get("/api/v1/datasets", headers=carol)
    assert gone.status_code == 401 and gone.json()["code"] == "unauthorized"
    assert api.client.post(f"/api/v1/api-keys/{created['id']}/revoke", headers=admin).status_code == 200


def test_non_admins_cannot_create_or_touch_other_owners_keys(api: Any) -> None:
    alice = api.key("alice")
    resp = api.client.post("/api/v1/api-keys", json={"name": "x", "owner": "alice", "is_admin": True}, headers=alice)
    assert resp.status_code == 403 and resp.json()["code"] == "forbidden"
    bob = api.key("bob")
    bob_keys = api.client.get("/api/v1/api-keys", headers=bob).json()["items"]
    assert len(bob_keys) == 1
    # alice cannot see or revoke bob's key (404, no existence leak); bob may revoke his own
    assert api.client.post(f"/api/v1/api-keys/{bob_keys[0]['id']}/revoke", headers=alice).status_code == 404
    assert api.client.get("/api/v1/datasets", headers=bob).status_code == 200
    assert api.client.post(f"/api/v1/api-keys/{bob_keys[0]['id']}/revoke", headers=bob).status_code == 200
    assert api.client.get("/api/v1/datasets", headers=bob).status_code == 401
    bad = api.client.post("/api/v1/api-keys", json={"name": "x", "owner": "a b", "extra": 1},
                          headers=api.key("root", admin=True))
    assert bad.status_code == 422
