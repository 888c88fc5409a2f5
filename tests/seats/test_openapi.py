"""Schemathesis against the running seats service: no request its OpenAPI document allows, nor any
it forbids, makes the service fail with a server error (5xx).

The document is loaded from the service itself (``/services/seats/api/openapi.yaml``) through the
hub's proxy. Every operation is fuzzed twice: with ids drawn at random (mostly unknown objects) and
with the ids of a real organisation, cohort and seat, so bodies and queries reach the code behind
the lookups. Each in valid and invalid variants (Schemathesis's positive and negative modes), with
a cohort admin's token. Bounded by ``EXAMPLES`` per operation and mode, so it stays under two
minutes on a busy machine.
"""

from __future__ import annotations

import pytest

from tests.support.hubfixture import api_token, login, stop_hub
from tests.support.seatshub import ORG_A_ADMIN, start_seats_hub

pytestmark = [pytest.mark.slow, pytest.mark.hub]

EXAMPLES = 12


@pytest.fixture(scope="module")
def seats_hub(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        hub, seeded, _ = start_seats_hub(tmp_path_factory, patch, sweep_every=3600)
    yield hub, seeded
    stop_hub(hub)


def _fuzz(operation, *, base_url, headers, mode, path_parameters=None) -> list[str]:
    """Run one operation's strategy; the server errors found, as lines for the assertion message."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup

    found: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
    def run(case):
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (AssertionError, FailureGroup) as failure:
            found.append(f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}: {failure}")

    run()
    return found


def test_fuzzing_the_documented_api_finds_no_server_error(seats_hub):
    import schemathesis
    from schemathesis import GenerationMode

    hub, seeded = seats_hub
    token = api_token(hub, login(hub, ORG_A_ADMIN), ORG_A_ADMIN)
    schema = schemathesis.openapi.from_url(f"{hub.url}/services/seats/api/openapi.yaml")
    base_url = f"{hub.url}/services/seats/api"
    headers = {"Authorization": f"token {token}"}
    real_ids = {"organisation_id": seeded.organisations["Acme"], "cohort_id": seeded.cohorts["cpu"],
                "seat_id": seeded.seats["lea"]}

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12  # every documented method and path is fuzzed
    failures = []
    for operation in operations:
        names = {parameter.name for parameter in operation.path_parameters}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, base_url=base_url, headers=headers, mode=mode)
            if names:
                failures += _fuzz(operation, base_url=base_url, headers=headers, mode=mode,
                                  path_parameters={name: real_ids[name] for name in names})
    assert failures == [], "\n".join(failures[:20])
    # The service is still up and answering after the fuzzing.
    assert schemathesis.openapi.from_url(f"{hub.url}/services/seats/api/openapi.yaml") is not None
