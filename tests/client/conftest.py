"""One real service (``molrg up`` on the embedded default) shared by the client, CLI and SSE tests."""

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, _start


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _start(tmp_path_factory.mktemp("client_embedded"), "embedded", {})


@pytest.fixture(scope="session")
def api_key(embedded_stack: Stack) -> str:
    return (embedded_stack.data_dir / "api-key").read_text().strip()


@pytest.fixture()
def client(embedded_stack: Stack, api_key: str):  # type: ignore[no-untyped-def]
    from molrg_client import Client

    with Client(embedded_stack.url, api_key) as c:
        yield c


def wait_plots(fetch, kinds: set[str], timeout: float = 90.0) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Figures are rendered after a job's result is committed: poll until ``kinds`` are all there."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        plots = {p["kind"]: p for p in fetch()}
        if kinds <= set(plots) or time.monotonic() > deadline:
            return plots
        time.sleep(0.25)
