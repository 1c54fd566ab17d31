"""`sidrec serve`: a FastAPI app over one trained run, with micro-batched beam search and a web page."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from sidrec.api import Model


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_server(model: Model, host: str = "127.0.0.1", port: int = 8000, **app_options):
    """A uvicorn Server for `model` (graceful shutdown: in-flight requests finish, up to 10 s)."""
    import uvicorn

    from sidrec.serve.app import create_app

    config = uvicorn.Config(
        create_app(model, **app_options),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        backlog=2048,
    )
    return uvicorn.Server(config)


def start_background(model: Model, host: str = "127.0.0.1", port: int = 0, **app_options):
    """Run the server in a daemon thread (tests, benchmarks); returns (server, thread, base url).

    Stop it with `server.should_exit = True; thread.join()`.
    """
    port = port or free_port(host)
    server = make_server(model, host, port, **app_options)
    thread = threading.Thread(target=server.run, daemon=True, name="sidrec-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    return server, thread, f"http://{host}:{port}"


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    beam_width: int | None = None,
    allow_unfinished: bool = False,
    **app_options,
) -> None:
    """Load the run once, then serve until Ctrl-C / SIGTERM. A port in use is an error before anything loads."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ValueError(f"cannot serve on {host}:{port}: {err.strerror} (another server? choose --port)") from None
    model = Model(run_dir, beam_width=beam_width, allow_unfinished=allow_unfinished)
    print(f"serving {run_dir} ({model.n_items} items) on http://{host}:{port}  (Ctrl-C stops)", flush=True)
    make_server(model, host, port, **app_options).run()


__all__ = ["free_port", "make_server", "start_background", "serve"]
