"""Schemathesis fuzzes every operation of our OpenAPI document: no answer may be a 5xx.

Driven through hypothesis directly (schemathesis' pytest plugin does not load under this
pytest); a few derandomised examples per operation keep the run short and repeatable.
"""

import schemathesis
from hypothesis import HealthCheck, given, settings

EXAMPLES_PER_OPERATION = 4


def test_no_server_errors(api_server):
    schema = schemathesis.openapi.from_url(f"{api_server}/openapi?f=json")
    failures, calls = [], 0

    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def call(case):
            nonlocal calls
            calls += 1
            response = case.call(base_url=api_server, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} "
                                f"-> {response.status_code} {response.text[:200]}")

        call()
    assert calls > 50
    assert not failures, "\n".join(failures[:20])
