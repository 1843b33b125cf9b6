"""Bearer keys: 401 without a valid key, owner isolation (404 for others), admin sees all, revocation."""

import uuid
from typing import Any

from sqlalchemy import update

from db.base import utcnow
from db.models import ApiKey
from db.session import session_scope
from service.auth import hash_key
from tests.service.factories import SYNTH, insert_model, insert_sample_set, make_dataset, submit_fit
from tests.service.test_datasets import assert_problem


def test_missing_invalid_and_revoked_keys(api: Any) -> None:
    r = api.client.get("/api/v1/jobs")
    assert_problem(r, 401, code="unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(api.client.get("/api/v1/jobs", headers={"Authorization": "Bearer molrg_nope"}), 401)
    assert_problem(api.client.get("/api/v1/jobs", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(api.client.post("/api/v1/datasets", json=SYNTH), 401)
    h = api.key()
    assert api.client.get("/api/v1/jobs", headers=h).status_code == 200
    key = h["Authorization"].split()[1]
    with session_scope(api.maker) as s:
        stored = s.query(ApiKey).one()
        assert stored.key_hash == hash_key(key) and key not in (stored.key_hash, stored.prefix)
        s.execute(update(ApiKey).values(revoked_at=utcnow()))
    body = assert_problem(api.client.get("/api/v1/jobs", headers=h), 401)
    assert "revoked" in body["detail"]


def test_owner_isolation_and_admin(api: Any) -> None:
    alice, bob, admin = api.key("alice"), api.key("bob"), api.key("root", admin=True)
    ds = make_dataset(api, alice)
    job = submit_fit(api, alice, ds["id"])
    _fit_job, model_id = insert_model(api, "alice", ds["id"])
    set_id = insert_sample_set(api, "alice", model_id)
    for path in (f"/api/v1/datasets/{ds['id']}", f"/api/v1/datasets/{ds['id']}/data.npy",
                 f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{job['id']}/metrics", f"/api/v1/models/{model_id}",
                 f"/api/v1/models/{model_id}/bases.npz", f"/api/v1/sample-sets/{set_id}",
                 f"/api/v1/sample-sets/{set_id}/samples.npy"):
        assert_problem(api.client.get(path, headers=bob), 404)
        assert api.client.get(path, headers=alice).status_code == 200, path
        assert api.client.get(path, headers=admin).status_code == 200, path
    assert_problem(api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bob), 404)
    # bob cannot fit alice's dataset nor sample alice's model
    body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "subspace_clustering"}
    assert_problem(api.client.post("/api/v1/fits", json=body, headers=bob), 404)
    assert_problem(api.client.post(f"/api/v1/models/{model_id}/samples", json={}, headers=bob), 404)
    for listing in ("/api/v1/datasets", "/api/v1/jobs", "/api/v1/models", "/api/v1/sample-sets"):
        assert api.client.get(listing, headers=bob).json()["items"] == []
        assert len(api.client.get(listing, headers=alice).json()["items"]) >= 1
        assert len(api.client.get(listing, headers=admin).json()["items"]) >= 1
    make_dataset(api, bob)
    assert len(api.client.get("/api/v1/datasets", headers=admin).json()["items"]) == 2
    assert len(api.client.get("/api/v1/datasets", headers=alice).json()["items"]) == 1
    assert api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice).json()["status"] == "cancelled"


def test_auth_disabled_uses_local_owner(make_api: Any, sqlite_url: str) -> None:
    api = make_api(sqlite_url, auth_enabled=False)
    ds = make_dataset(api, {})
    job = submit_fit(api, {}, ds["id"])
    assert api.client.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    local = api.key("local")
    assert api.client.get(f"/api/v1/datasets/{ds['id']}", headers=local).status_code == 200
    assert api.client.get(f"/api/v1/datasets/{uuid.uuid4()}").status_code == 404
