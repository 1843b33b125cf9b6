"""Python client for the molrg HTTP API (httpx + numpy; no torch).

    from molrg_client import Client
    c = Client()                      # MOLRG_URL (default http://127.0.0.1:8000), MOLRG_API_KEY
    ds = c.datasets.create_synthetic(ambient_dim=48, dims=[4, 4], n_samples=200)
    job = c.fits.create(ds.id, n_components=2, dims=[4, 4], method="pca")
    job = c.jobs.wait(job, progress=True)
    model = c.models.get(job.result["model_id"])
    bases = c.models.bases(model.id)  # list of (n, d_k) numpy arrays
"""

from molrg_client.client import TERMINAL, Client
from molrg_client.errors import MolrgError, MolrgTimeout
from molrg_client.types import Dataset, Event, Job, Model, Page, SampleSet, Sweep

__all__ = ["Client", "MolrgError", "MolrgTimeout", "Dataset", "Event", "Job", "Model", "Page", "SampleSet",
           "Sweep", "TERMINAL"]
