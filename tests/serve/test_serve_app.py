"""The HTTP API over a real server on 127.0.0.1: answers, micro-batching, and a 4xx for every bad request."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def test_recommend_matches_the_api(client, toy_model):
    history = toy_model.item_ids[:3]
    r = client.post("/recommend", json={"history": history, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = [x.to_dict() for x in toy_model.recommend(history, k=5)]
    assert [x["item_id"] for x in body["items"]] == [x["item_id"] for x in expected]
    assert body["items"][0].keys() == {"item_id", "rank", "score", "title", "sid"}
    assert body["skipped"] == []


def test_batch_and_exclude(client, toy_model):
    reqs = [{"history": toy_model.item_ids[i : i + 2], "k": 3 + i, "exclude_history": i % 2 == 0} for i in range(4)]
    r = client.post("/recommend/batch", json={"requests": reqs})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [len(x["items"]) for x in results] == [3, 4, 5, 6]
    assert not {x["item_id"] for x in results[0]["items"]} & set(reqs[0]["history"])


def test_concurrent_requests_share_model_calls(client, toy_model):
    histories = [toy_model.item_ids[i : i + 3] for i in range(40)]
    before = client.get("/metrics").json()
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda h: client.post("/recommend", json={"history": h}).status_code, histories))
    assert codes == [200] * 40
    after = client.get("/metrics").json()
    assert after["model_rows"] - before["model_rows"] == 40
    assert after["model_calls"] - before["model_calls"] < 40  # some requests were batched together
    assert after["requests"]["/recommend 200"] >= 40
    assert sum(after["latency_ms_histogram"].values()) == after["requests_total"]  # counted when a request ends


def test_items_search_and_lookup(client, toy_model):
    word = max(toy_model.titles[0].split(), key=len)
    hits = client.get("/items", params={"q": word, "limit": 5}).json()["items"]
    assert hits and len(hits) <= 5 and all(word.lower() in h["title"].lower() for h in hits)
    item = client.get(f"/items/{toy_model.item_ids[0]}").json()
    assert item == toy_model.item(toy_model.item_ids[0])
    r = client.get("/items/nope")
    assert r.status_code == 404 and "GET /items?q=" in r.json()["error"]


def test_health_and_page(client, toy_model):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == toy_model.n_items
    page = client.get("/")
    assert page.status_code == 200 and "<title>sidrec</title>" in page.text


def _bad(client, toy_model):
    known = toy_model.item_ids[0]
    return {
        "malformed JSON": (
            dict(content=b'{"history": [', headers={"content-type": "application/json"}),
            422,
            "malformed JSON",
        ),
        "body not an object": (dict(json=[known]), 422, "must be a JSON object"),
        "history of numbers": (dict(json={"history": [1, 2]}), 422, "history.0: Input should be a valid string"),
        "k as a string": (dict(json={"history": [known], "k": "10"}), 422, "k: Input should be a valid integer"),
        "missing history": (dict(json={"k": 10}), 422, "history: Field required"),
        "typo in a field": (dict(json={"history": [known], "kk": 3}), 422, "kk: Extra inputs are not permitted"),
        "unknown items": (dict(json={"history": [known, "nope-9"]}), 422, "unknown item ids in history: 'nope-9'"),
        "all unknown, skipped": (dict(json={"history": ["nope"], "skip_unknown": True}), 422, "no known item"),
        "k = 0": (dict(json={"history": [known], "k": 0}), 422, "k: Input should be greater than or equal to 1"),
        "k = 10^6": (dict(json={"history": [known], "k": 10**6}), 422, "k: Input should be less than or equal to 100"),
        "empty history": (dict(json={"history": []}), 422, "history: List should have at least 1 item"),
        "10^5-item history": (dict(json={"history": ["1"] * 10**5}), 422, "history: List should have at most 1000"),
        "10 MB body": (
            dict(content=b"x" * 10_000_000, headers={"content-type": "application/json"}),
            413,
            "over the 1048576-byte limit",
        ),
    }


def test_bad_requests_get_a_4xx_that_says_what_to_fix(client, toy_model):
    table = []
    for name, (kwargs, status, message) in _bad(client, toy_model).items():
        r = client.post("/recommend", **kwargs)
        table.append(f"{name}: {r.status_code} {r.text[:160]}")
        assert r.status_code == status, (name, r.text)
        assert message in r.json()["error"], (name, r.json())
        ok = client.post("/recommend", json={"history": [toy_model.item_ids[0]], "k": 2})
        assert ok.status_code == 200  # the server keeps serving
    print("\n".join(table))


def test_unknown_items_are_listed(client, toy_model):
    r = client.post("/recommend", json={"history": ["a", toy_model.item_ids[0], "b", "a"]})
    assert r.json()["unknown_items"] == ["a", "b"]
    assert '"skip_unknown": true' in r.json()["error"] and "skip_unknown=True" not in r.json()["error"]  # HTTP's words
    ok = client.post("/recommend", json={"history": ["a", toy_model.item_ids[0]], "skip_unknown": True, "k": 2})
    assert ok.status_code == 200 and ok.json()["skipped"] == ["a"]
    good = {"history": [toy_model.item_ids[0]]}
    batch = client.post("/recommend/batch", json={"requests": [good, good, {"history": ["zz"]}]})
    assert batch.status_code == 422 and "in requests[2].history: 'zz'" in batch.json()["error"]


def test_chunked_oversized_body_is_refused(client):
    r = client.post("/recommend", content=iter([b"{" + b" " * 700_000, b" " * 700_000 + b"}"]))
    assert r.status_code == 413


def test_wrong_method_and_path(client):
    assert client.get("/recommend").status_code == 405
    assert "POST /recommend" in client.get("/recommend").json()["error"]
    assert client.get("/nope").status_code == 404
    bad_utf8 = client.post("/recommend", content=b"\x80", headers={"content-type": "application/json"})
    assert bad_utf8.json()["error"].startswith("the body is not valid UTF-8")
    assert json.loads(client.get("/items").text)["error"].startswith("query.q: Field required")


def test_a_busy_port_is_an_error_before_the_run_loads(toy_run, tmp_path):
    import socket

    from sidrec.serve import serve

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot serve on 127.0.0.1:{port}: .*choose --port"):
            serve(tmp_path / "no_run_here", port=port)  # the port is checked first: the missing run is not reached
