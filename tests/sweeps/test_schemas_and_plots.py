"""The API's plain-Python grid math agrees with the engine; the heatmap is a real PNG of its size."""

import io

import matplotlib.image
import pytest

from molrg.sweeps.grid import SweepGrid, plan_chunks
from service.sweep_schemas import SweepCreate
from workers import plots
from workers.sweeps import _chunk_n_fits, grid_from_spec

GRIDS = [
    {"ambient_dim": 48, "n_components": 1, "dims": [2, 3, 4, 5, 6, 7, 8], "samples": list(range(2, 16)),
     "trials": 20, "methods": ["pca", "diffusion"]},
    {"ambient_dim": [24, 48], "n_components": [1, 2, 3], "dims": [2, 4], "samples": [3, 9], "trials": 7,
     "methods": ["pca", "subspace_clustering", "diffusion"], "samples_per": "total"},
    {"ambient_dim": 16, "n_components": [2], "dims": [1, 2, 3], "samples": [1, 2], "trials": 1,
     "methods": ["subspace_clustering"]},
]


@pytest.mark.parametrize("body", GRIDS)
def test_api_fit_count_matches_the_engine(body: dict) -> None:
    req = SweepCreate.model_validate(body)
    grid = grid_from_spec(req.model_dump(mode="json"))
    assert isinstance(grid, SweepGrid)
    assert req.n_fits() == grid.n_fits
    chunks = plan_chunks(grid, 37)
    assert sum(_chunk_n_fits(grid, c) for c in chunks) == grid.n_fits


def test_heatmap_png_has_the_stated_size() -> None:
    cells = [{"method": "diffusion", "n_components": 2, "ambient_dim": 48, "d": d, "samples": s, "trials": 5,
              "success_rate": 1.0 if s >= d else 0.0} for d in (2, 4, 6) for s in (2, 3, 5, 8)]
    png = plots.heatmap_png(cells, method="diffusion", n_components=2, ambient_dim=48, width=640, height=480)
    assert plots.png_size(png) == (640, 480)
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[:2] == (480, 640) and image.std() > 0.05
    with pytest.raises(ValueError, match="no cells"):
        plots.heatmap_png(cells, method="pca", n_components=1, ambient_dim=48)
    with pytest.raises(ValueError, match="not a PNG"):
        plots.png_size(b"GIF89a" + bytes(40))
