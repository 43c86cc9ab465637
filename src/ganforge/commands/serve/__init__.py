"""`ganforge serve RUN_OR_MODEL... [--host 127.0.0.1] [--port 7860]`: a local web page to play with trained
models (docs/serve.md): a sample grid by seed, the label or caption of a conditional model, StyleGAN's
truncation and style mixing, a latent walk, upload-and-translate (pix2pix, CycleGAN) and upload-and-upscale
(SRGAN); points as a scatter plot, table rows as CSV.

The page is a Starlette app (app.py) run by uvicorn: the optional `serve` extra, checked before anything is
loaded. Every model of the command line is loaded first (a bad one is one error naming it, exit status 2),
then the address is bound (127.0.0.1 unless --host says otherwise), then the page is served until Ctrl-C.
"""
from __future__ import annotations

import importlib.util
import socket
import sys

from ...errors import GanforgeError
from .models import load_models

EXTRA = ("starlette", "uvicorn")
DEFAULT_PORT = 7860


def check_extra() -> None:
    missing = [m for m in EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise GanforgeError(f"ganforge serve needs the serve extra ({', '.join(missing)} not installed): "
                            f"pip install 'ganforge[serve]'")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one); one line naming the address when it cannot be."""
    if not 0 <= port <= 65535:
        raise GanforgeError(f"--port must be in 0..65535 (0: any free port); got {port}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise GanforgeError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port or "
                            f"--host") from None
    return sock


def serve(models, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the web page over `models` (run directories, checkpoint or export folders, "zoo:NAME") on
    http://host:port/ until interrupted (port 0: a free port, printed with the URL). host defaults to
    127.0.0.1 (this machine only); another address lets anyone who can reach it use the models. Needs the
    serve extra (pip install 'ganforge[serve]')."""
    check_extra()
    from .app import create_app   # noqa: PLC0415  (tests/test_layering.py LOCAL_IMPORTS says why)
    import uvicorn

    loaded = load_models([str(m) for m in ([models] if isinstance(models, str) else models)])
    sock = listen(host, port)
    app = create_app(loaded, host)
    port = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    names = ", ".join(m.describe()["name"] for m in loaded)
    print(f"serving {names} at {url}  (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"ganforge: note: bound to {host}: anyone who can reach this machine on port {port} can use the "
              f"page", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:     # Ctrl-C: uvicorn has shut down and raises it again once done
        pass
    finally:
        sock.close()
    print("stopped", flush=True)


def run(args) -> int:
    serve(args.models, host=args.host, port=args.port)
    return 0
