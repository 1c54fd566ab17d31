"""A real uvicorn server on 127.0.0.1 over the session's toy run, shared by the serving tests."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")


@pytest.fixture(scope="session")
def server(toy_model):
    """Base URL of a live server; stopped (gracefully) at the end of the session."""
    from sidrec.serve import start_background

    srv, thread, url = start_background(toy_model, max_wait_ms=2.0)
    yield url
    srv.should_exit = True
    thread.join(timeout=15)
    assert not thread.is_alive(), "the server did not shut down"
