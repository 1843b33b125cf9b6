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
