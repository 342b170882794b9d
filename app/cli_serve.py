"""`python -m app serve`: the API server without a window, for scripts and servers.

The same code path as View ▸ Server: the engine's process driven by the inference thread, the
local backend's queue, ApiServer on a qasync loop (a QCoreApplication: no display needed). Ctrl+C
or SIGTERM stop it cleanly: requests in flight are stopped, the engine ends, the exit status is 0.

Output: one line `Serving MODEL at URL` on stdout once the model is loaded and the socket listens;
failures as one line on stderr with exit status 1 (2: wrong usage).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import logging
import signal
import sys
import threading

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    serve.add_argument("--port", type=int, help="the port (default: the one saved in View ▸ Server, or 7433; "
                       "0 picks a free one)")
    serve.add_argument("--model", metavar="PATH", help="the GGUF file to serve (default: the default model)")
    serve.add_argument("--host", metavar="ADDR", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1, this computer only); any other "
                       "needs --key-stdin")
    serve.add_argument("--key-stdin", action="store_true",
                       help="read the API key clients must send (Authorization: Bearer KEY) from stdin")


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 <= args.port <= 65535:
        print("The port must be 0 to 65535.", file=sys.stderr)
        return 2
    try:
        ipaddress.ip_address(args.host)
    except ValueError:
        print(f"{args.host!r} is not an IP address (use 127.0.0.1, 0.0.0.0 or this machine's address).",
              file=sys.stderr)
        return 2
    key = ""
    if args.key_stdin:
        key = sys.stdin.readline().strip()
        if not key:
            print("--key-stdin read an empty key.", file=sys.stderr)
            return 1
    settings = dataclasses.replace(_saved_settings(), host=args.host, start_with_app=False)
    if args.port is not None:
        settings = dataclasses.replace(settings, port=args.port)
    if settings.on_network and not key:
        print(f"Listening on {args.host} lets other devices connect: give it an API key with --key-stdin "
              "(for example `echo \"$KEY\" | python -m app serve --host 0.0.0.0 --key-stdin`).",
              file=sys.stderr)
        return 2
    return _serve(settings, key, args.model)


def _saved_settings():
    from app.core.server.settings import ServerSettings, load_settings

    try:
        return load_settings()
    except OSError:
        return ServerSettings()


def _serve(settings, key: str, model: str | None) -> int:
    import qasync
    from PySide6.QtCore import QCoreApplication, QTimer

    from app.core.models.library import ModelLibrary
    from app.session import tasks
    from app.session.inference_worker import InferenceClient
    from app.session.local_backend import LocalBackend
    from app.session.model_library import LibrarySession
    from app.session.server import ApiServer

    qt_app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    tasks.finalize_async_generators(loop)
    library = ModelLibrary()
    path = model or library.default_model()
    if path is None:
        print("No model to serve: give one with --model PATH (see `python -m app models list`).",
              file=sys.stderr)
        return 1
    backend = LocalBackend(InferenceClient(niceness=0))  # no window to yield the CPU to
    library_session = LibrarySession(library)
    server = ApiServer(backend, library_session, _sampling_defaults())
    done = asyncio.Event()
    outcome = {"code": 0}

    def finish(code: int) -> None:
        outcome["code"] = code
        done.set()

    def on_loaded(info) -> None:
        if not (server.running or server.starting):  # the model loaded again after a crash: keep serving
            server.start(settings, key)

    def on_load_failed(_kind: str, message: str, _kept) -> None:
        print(message, file=sys.stderr)
        finish(1)

    def on_state() -> None:
        if server.running:
            print(f"Serving {backend.model.name} at {server.url}", flush=True)
        elif server.error:
            print(server.error, file=sys.stderr)
            finish(1)

    backend.loaded.connect(on_loaded)
    backend.load_failed.connect(on_load_failed)
    server.state_changed.connect(on_state)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda *_: QTimer.singleShot(0, lambda: finish(0)))
    wake = QTimer()  # Python runs signal handlers only when it gets control
    wake.timeout.connect(lambda: None)
    wake.start(250)
    try:
        with loop:
            library_settings = library.settings_for(path).load_options()
            backend.load(str(path), library_settings)
            loop.run_until_complete(done.wait())
            if server.running:
                loop.run_until_complete(server.shutdown())
    finally:
        wake.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
        backend.close()
    return outcome["code"]


def _sampling_defaults():
    """The window's default sampling (Sampling ▸ Save as default), read once."""
    from app.core.chat.defaults import DefaultsStore
    from app.core.chat.sampling import SamplingParams

    try:
        sampling = DefaultsStore().load().sampling
    except (OSError, ValueError):
        sampling = SamplingParams()
    return lambda: sampling
