"""Schemathesis against the live server, from the OpenAPI document it serves, with signed calls.

Every generated request (valid and invalid by the schema) is signed over its final body
bytes with the partner's key, so the fuzzing reaches past authentication into parsing,
validation and the state machine. Each answer must be no server error, a documented status
with a documented content type, match its response schema, and show no traceback; a request
that is refused must leave every table as it was. ``PAYOUT131_FULL=1`` tries many more
inputs per operation (docs/reliability.md).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from banking import Onboard
from payout131.client import signing
from payout131.runtime import Runtime
from snapshot import snapshot

FULL = os.environ.get("PAYOUT131_FULL") == "1"
EXAMPLES = 200 if FULL else 4
pytestmark = pytest.mark.timeout(0 if FULL else 300)
EXAMPLES_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class PartnerSignature(requests.auth.AuthBase):
    """Sign the prepared request's final body bytes, as a partner's integration does."""

    def __init__(self, project: str, key: rsa.RSAPrivateKey) -> None:
        self.project, self.key = project, key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        request.headers["X-PARTNER-PROJECT"] = self.project
        request.headers["X-PARTNER-SIGN"] = signing.sign(self.key, raw)
        return request


@pytest.fixture
def signed(bank: Runtime, onboard: Onboard) -> Iterator[requests.Session]:
    partner = onboard("fuzz", wallet=10_000_000, account=10_000_000)
    with requests.Session() as session:
        session.auth = PartnerSignature(partner.project, partner.key)
        yield session


def test_the_api_survives_schemathesis(
    bank: Runtime, http: httpx.Client, signed: requests.Session
) -> None:
    schema = schemathesis.openapi.from_url(f"{http.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(schema.raw_schema["paths"])
    tried: Counter[int] = Counter()

    def exercise(case: Any) -> None:
        before = snapshot(bank)
        response = case.call(session=signed, timeout=30)
        tried[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        assert b"Traceback" not in response.content
        assert "server" not in response.headers
        if response.status_code != 200:
            assert snapshot(bank) == before, response.text

    for operation in operations:
        for mode in MODES[: 2 if "requestBody" in operation.definition.raw else 1]:

            @settings(EXAMPLES_SETTINGS)
            @given(operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                exercise(case)

            run()
    print(f"schemathesis: {sum(tried.values())} requests, by status {dict(tried)}")
