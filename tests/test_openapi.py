"""The OpenAPI description: committed, current, served, and covering every method."""

from __future__ import annotations

import httpx

from payout131.protocol import methods as api
from payout131.protocol import openapi


def test_the_committed_document_is_current() -> None:
    assert openapi.PATH.read_text(encoding="utf-8") == openapi.render(), (
        "src/payout131/protocol/openapi.json is stale: run `python -m payout131.protocol.openapi`"
    )


def test_every_method_in_every_version_is_described() -> None:
    paths = openapi.document()["paths"]
    for name, method in api.METHODS.items():
        for version in ("v1", "v2"):
            assert (f"/api/{version}/{name}" in paths) == (version in method.versions)


def test_the_server_serves_it(http: httpx.Client) -> None:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == openapi.PATH.read_bytes()
    assert response.json()["openapi"] == "3.1.0"
