import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matmuls on a shared 2-core machine: one thread is faster and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
