"""The API's JSON parser: exact numbers, and a clear 400 for what it cannot read."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_it_answers_json_nested_too_deeply_with_a_400(engine, depth):
    body = "[" * depth + "]" * depth
    answer = engine.post("/api/v1/ingest/liquidations", body, content_type="application/json")
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["detail"]
