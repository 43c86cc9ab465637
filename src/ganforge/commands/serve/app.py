"""The web app of `ganforge serve`: one page (page.html, page.js, page.css: package files, nothing fetched from
elsewhere, so it works offline) and a small JSON/PNG API over the models of the command line (models.py).

  GET  /                                   the page
  GET  /api/models                         the models and what each offers (Model.describe)
  GET  /api/models/I/sample?n&seed&label&text&truncation      PNG grid or scatter; CSV rows for tables
  GET  /api/models/I/walk?space&seed&frames&walks&truncation&label   animated GIF
  GET  /api/models/I/style?seed&truncation&bands&rows&cols    PNG
  POST /api/models/I/translate?direction&resize, /api/models/I/upscale   body: the image's bytes -> PNG

A model is named by its index in the command line's list, never by a path; an upload is the raw request body
(no file name is sent or used), refused past models.MAX_UPLOAD_BYTES while it streams in, validated with PIL
and never written to disk. Bad input is HTTP 400 (413: too large) with {"error": "one line"}. Bound to a
loopback address, the app answers only requests for a loopback host name (a web page elsewhere cannot reach
it by DNS rebinding). One request draws at a time (the models share torch's RNG).
"""
from __future__ import annotations

import threading
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...errors import GanforgeError
from .models import LIMITS, MAX_UPLOAD_BYTES, BadRequest, Model

LOOPBACK = ("127.0.0.1", "localhost")     # bound to one of these, only requests for these host names are answered
STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript; charset=utf-8"),
          "/page.css": ("page.css", "text/css; charset=utf-8")}
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; "
                                      "object-src 'none'; "
                                      "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# query parameters of each panel: name -> type (str, int, float, bool)
PARAMS = {"sample": {"n": int, "seed": int, "label": int, "text": str, "truncation": float},
          "walk": {"space": str, "seed": int, "frames": int, "walks": int, "truncation": float, "label": int},
          "style": {"seed": int, "truncation": float, "bands": str, "rows": int, "cols": int},
          "translate": {"direction": str, "resize": bool}, "upscale": {}}


def _value(name: str, raw: str, kind):
    if kind is str:
        return raw[:200]
    if kind is bool:
        if raw not in ("0", "1", "true", "false"):
            raise BadRequest(f"{name} must be true or false; got {raw[:40]!r}")
        return raw in ("1", "true")
    try:
        return kind(raw)
    except ValueError:
        raise BadRequest(f"{name} must be {'an integer' if kind is int else 'a number'}; got {raw[:40]!r}") from None


def query(request: Request, panel: str) -> dict:
    """The panel's parameters from the query string, typed; an unknown or malformed one is a 400."""
    known, out = PARAMS[panel], {}
    for name, raw in request.query_params.items():
        if name not in known:
            raise BadRequest(f"unknown parameter {name[:40]!r} for {panel}; it takes {', '.join(known) or 'none'}")
        if raw != "":
            out[name] = _value(name, raw, known[name])
    return out


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it passes MAX_UPLOAD_BYTES: never held whole beyond that."""
    limit = f"the upload is larger than the {MAX_UPLOAD_BYTES // 2 ** 20} MiB limit"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise BadRequest(limit, 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise BadRequest(limit, 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(models: list[Model], host: str = "127.0.0.1") -> Starlette:
    """The app over already loaded models (models.load_models); `host` is the address it will be bound to."""
    lock = threading.Lock()

    def model(request: Request) -> Model:
        i = request.path_params["index"]
        if not 0 <= i < len(models):
            raise BadRequest(f"no model {i}; this server has models 0..{len(models) - 1}", 404)
        return models[i]

    async def draw(fn, *args, **kw):
        def locked():
            with lock:
                return fn(*args, **kw)
        return await run_in_threadpool(locked)

    async def page(request: Request) -> Response:
        name, media = STATIC[request.url.path]
        return Response(resources.files(__package__).joinpath(name).read_bytes(), media_type=media, headers=HEADERS)

    async def index(request: Request) -> Response:
        return JSONResponse({"models": [m.describe() for m in models], "limits": LIMITS})

    async def sample(request: Request) -> Response:
        m, q = model(request), query(request, "sample")
        data, media = await draw(m.sample, q.get("n"), q.get("seed", 0), q.get("label"), q.get("text"),
                                 q.get("truncation"))
        return Response(data, media_type=media)

    async def walk(request: Request) -> Response:
        m, q = model(request), query(request, "walk")
        data = await draw(m.walk, q.get("space", "z"), q.get("seed", 0), q.get("frames", 8), q.get("walks", 4),
                          q.get("truncation", 1.0), q.get("label"))
        return Response(data, media_type="image/gif")

    async def style(request: Request) -> Response:
        m, q = model(request), query(request, "style")
        bands = tuple(b.strip() for b in q["bands"].split(",") if b.strip()) if "bands" in q else None
        data = await draw(m.style, q.get("seed", 0), q.get("truncation", 0.7), bands, q.get("rows", 3),
                          q.get("cols", 4))
        return Response(data, media_type="image/png")

    async def translate(request: Request) -> Response:
        m, q = model(request), query(request, "translate")
        body = await read_body(request)
        return Response(await draw(m.translate, body, q.get("direction"), q.get("resize", False)),
                        media_type="image/png")

    async def upscale(request: Request) -> Response:
        m, _ = model(request), query(request, "upscale")
        return Response(await draw(m.upscale, await read_body(request)), media_type="image/png")

    async def refused(request: Request, e: GanforgeError) -> Response:
        return JSONResponse({"error": str(e)}, status_code=getattr(e, "status", 400))

    api = "/api/models/{index:int}/"
    routes = [*(Route(path, page) for path in STATIC), Route("/api/models", index),
              Route(api + "sample", sample), Route(api + "walk", walk), Route(api + "style", style),
              Route(api + "translate", translate, methods=["POST"]), Route(api + "upscale", upscale, methods=["POST"])]
    hosts = list(LOOPBACK) if host in LOOPBACK else ["*"]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                     exception_handlers={GanforgeError: refused})
