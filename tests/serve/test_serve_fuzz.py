"""Property-based fuzzing of the HTTP API (Hypothesis) against the live 127.0.0.1 server.

Any JSON body, and near-valid bodies with wrong types, sizes and ids, get either a 200 with k
items or a 4xx whose `error` is a message; never a 5xx, and the server keeps answering.
"""

from __future__ import annotations

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def check(r: httpx.Response, k: int | None = None) -> None:
    assert r.status_code < 500, r.text
    body = r.json()
    if r.status_code == 200:
        assert k is None or len(body["items"]) == k
    else:
        assert 400 <= r.status_code < 500 and isinstance(body["error"], str) and body["error"]


@SETTINGS
@given(body=JSON)
def test_any_json_body(client, body):
    check(client.post("/recommend", json=body))


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_any_bytes(client, raw):
    check(client.post("/recommend", content=raw, headers={"content-type": "application/json"}))


@SETTINGS
@given(data=st.data())
def test_near_valid_requests(client, toy_model, data):
    ids = st.sampled_from(toy_model.item_ids[:50]) | st.text(max_size=12)
    history = data.draw(st.lists(ids, min_size=0, max_size=30))
    k = data.draw(st.integers(-5, 150) | st.sampled_from([10, 10**6]))
    body = {"history": history, "k": k}
    body.update(
        data.draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "exclude_history": st.booleans(),
                    "skip_unknown": st.booleans(),
                    "user": st.none() | st.text(max_size=8),
                },
            )
        )
    )
    r = client.post("/recommend", json=body)
    known = [h for h in history if h in toy_model.index]
    valid = 1 <= k <= 100 and history and (len(known) == len(history) or (body.get("skip_unknown") and known))
    assert (r.status_code == 200) == bool(valid), (body, r.text)
    check(r, k if valid else None)


@SETTINGS
@given(q=st.text(max_size=30), limit=st.integers(-3, 200))
def test_item_search(client, q, limit):
    r = client.get("/items", params={"q": q, "limit": limit})
    check(r)
    if r.status_code == 200:
        assert len(r.json()["items"]) <= limit
