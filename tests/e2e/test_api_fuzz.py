"""Schemathesis against the running gateway's own OpenAPI document: whatever it sends (within and
outside the documented shapes), no answer is a 5xx and every answer matches the document.

Both documented inputs (positive) and inputs that break the document (negative). Kept to about a
minute: a bounded number of examples per operation and mode (API_FUZZ_EXAMPLES, default 10)."""
import os

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


@pytest.fixture(scope="module")
def api_schema(app):
    schema = schemathesis.openapi.from_url(f"{app.url}/api/openapi.json")
    schema.config.update(base_url=app.url)
    return schema


@pytest.fixture(scope="module")
def signed_in(app):
    """A signed-in user's cookies, so protected routes are explored past the 401."""
    session = requests.Session()
    assert session.post(f"{app.url}/api/users/signup",
                        json={"email": "fuzz@example.com", "password": "fuzz-password"}).status_code == 201
    return dict(session.cookies)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_no_5xx_and_every_answer_matches_the_document(api_schema, signed_in):
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 17
    for operation, mode in [(o, m) for o in operations for m in GenerationMode]:
        # sign-out and refresh would end the shared session the other operations explore with
        cookies = {} if operation.path in ("/api/users/signout", "/api/users/refresh") else signed_in

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def explore(case):
            case.call_and_validate(cookies=cookies, checks=CHECKS)

        try:
            explore()
        except Unsatisfiable:  # nothing can break the document of an operation without inputs
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
