"""The docs page: Swagger UI 5 (served from the installed package, no internet) renders every operation of
``/openapi.json`` (OpenAPI 3.1, as it is), read from the live page in headless Chromium."""

import pytest

from tests.client.browser import CHROMIUM, Browser
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup installs it as root)")
def test_docs_page_renders_operations_offline(stack: Stack) -> None:
    if stack.backend != "embedded":
        pytest.skip("the docs page does not depend on the backend")
    spec = stack.client.get("/openapi.json").raise_for_status().json()
    assert spec["openapi"].startswith("3.1")
    expected = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    with Browser() as b:
        b.open(f"{stack.url}/docs")
        b.wait_for("document.querySelectorAll('.opblock').length > 0")
        version = b.evaluate("window.versions && window.versions.swaggerUI && window.versions.swaggerUI.version")
        assert version and version.split(".")[0] == "5", version
        # The UI loaded /openapi.json itself (no second, down-converted schema) and parsed it as 3.1.
        assert b.evaluate("ui.getConfigs().url") == "/openapi.json"
        assert b.evaluate("ui.specSelectors.isOAS31()") is True
        assert b.evaluate("ui.specSelectors.specJson().get('openapi')") == spec["openapi"]
        assert not b.evaluate("ui.errSelectors.allErrors().toJS().length")
        rendered = b.evaluate("""Array.from(document.querySelectorAll('.opblock')).map(o => [
            o.querySelector('.opblock-summary-method').textContent.trim(),
            o.querySelector('.opblock-summary-path').getAttribute('data-path')])""")
    assert {tuple(r) for r in rendered} == expected
