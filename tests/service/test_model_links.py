"""A model links to its loss history only when its fit recorded one (never for subspace clustering/PCA)."""

import uuid
from typing import Any

from db.models import MetricPoint
from tests.service.factories import insert_model, make_dataset

API = "/api/v1"


def test_loss_link_only_when_the_fit_has_a_loss_history(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    sc_job, sc_model = insert_model(api, "alice", ds["id"])  # subspace_clustering: no history
    loss_job, loss_model = insert_model(api, "alice", ds["id"])
    api.add(*[MetricPoint(job_id=uuid.UUID(loss_job), name="loss", step=i, value=1.0 / (i + 1)) for i in range(5)],
            MetricPoint(job_id=uuid.UUID(loss_job), name="grad_norm", step=0, value=1.0))
    shown = api.client.get(f"{API}/models/{sc_model}", headers=h).json()
    assert "loss" not in shown["links"] and {"self", "job", "plots"} <= shown["links"].keys()
    with_loss = api.client.get(f"{API}/models/{loss_model}", headers=h).json()
    assert with_loss["links"]["loss"] == f"{API}/jobs/{loss_job}/metrics?name=loss"
    history = api.client.get(with_loss["links"]["loss"], headers=h).json()
    assert history["total_points"] == 5 and history["names"] == ["grad_norm", "loss"]
    listed = {m["id"]: m["links"] for m in api.client.get(f"{API}/models", headers=h).json()["items"]}
    assert "loss" in listed[loss_model] and "loss" not in listed[sc_model]
