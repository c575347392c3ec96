"""Our OpenAPI schema, fuzzed by schemathesis against the API in process: no 5xx, no response that
contradicts the schema. A longer run against a live server is documented in README.md."""

import os

import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from crm_project.wsgi import application
from tests.conftest import TENANT_A

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


def tenant_app(environ, start_response):
    environ["HTTP_HOST"] = TENANT_A["domain"]
    return application(environ, start_response)


def _fuzz(operation, token):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        # Business validation (an email's shape, a known customer id) legitimately refuses
        # schema-valid data with a documented 400, so "positive data acceptance" is not checked.
        case.call_and_validate(
            headers={"Authorization": f"Token {token}"}, excluded_checks=[positive_data_acceptance]
        )

    run()


def test_it_honours_its_own_schema_on_every_operation(api):
    # The test's transaction lives on this connection: Django must not close it between requests.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    failures = {}
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", tenant_app)
        # Revoking the token mid-run would turn every later request into a 401.
        operations = [
            result.ok()
            for result in schema.get_all_operations()
            if result.ok().label != "DELETE /api/auth/token/current"
        ]
        assert len(operations) > 10
        for operation in operations:
            try:
                _fuzz(operation, api.token)
            except BaseException as exc:  # noqa: B036 - collect every failing operation (hypothesis raises groups)
                failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
