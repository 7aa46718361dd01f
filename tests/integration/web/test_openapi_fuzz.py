"""Schemathesis against the OpenAPI document: no request makes the server answer 500."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings

from databright.web import create_app
from databright.workspace import Workspace


def test_no_server_errors(home: Path, app_ws: Workspace) -> None:
    app = create_app(app_ws, secret="fuzz", allowed_hosts=["testserver", "localhost"])
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        run()
    assert not failures, "\n".join(failures[:10])
