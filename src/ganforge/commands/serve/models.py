"""What the web page can do with each model given on the command line, and the drawing behind every panel.

Each panel calls the command that does the same thing on the command line (sample, interpolate, style-mix,
translate, upscale) and writes its file into a private temporary folder under a name chosen here, whose
bytes are sent to the browser; nothing the browser sends names a file or a model path. Every kind of model
has a panel or a message: latent image generators get samples (with a label, caption or truncation where the
recipe has one), a latent walk and, for StyleGAN, style mixing; translators an upload-and-translate panel,
super-resolution an upload-and-upscale one; points a scatter plot, tables a CSV preview; a model that
generates nothing (dann's classifier) says so.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

from PIL import Image

from ... import zoo
from ...errors import GanforgeError
from ...recipes.base import ImageToImage, TextConditional, Translator, Upscaler
from ...runs import load
from ...training.callbacks import sample_suffix
from ..interpolate import latent_walk, save_walk
from ..sample import real_points
from ..style_mix import AUTO_WIDTH, BANDS, check_style_generator, style_bands, style_mix_grid
from ..translate import apply, load_translator, read_image, write_image
from ...viz import save_grid

MAX_UPLOAD_BYTES = 4 * 2 ** 20          # an upload larger than this is refused before it is read whole
MAX_SIDE = {"translate": 1024, "upscale": 256}   # pixels per side (upscale: the output is `scale` times larger)
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
LIMITS = {"seed": (0, 2 ** 31 - 1), "frames": (2, 24), "walks": (1, 8), "rows": (1, 6), "cols": (1, 8)}
# how many samples the page offers per kind (the default first); the largest is the most a request may ask for
COUNTS = {"image": (16, 1, 4, 64), "points": (2000, 500, 5000), "table": (20, 100, 1000)}
DEFAULT_CAPTION = "a red circle"


class BadRequest(GanforgeError):
    """Input from the browser that the page cannot use: HTTP 400 with this message (413 when too large)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_range(name: str, value, lo, hi):
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be in {lo}..{hi}; got {value}")
    return value


def validate_upload(data: bytes, panel: str) -> bytes:
    """The bytes of an uploaded image, checked: not empty, at most MAX_UPLOAD_BYTES, an image PIL reads in
    one of FORMATS, at most MAX_SIDE[panel] pixels a side (read from the header, before any pixel is
    decoded, so a small file that unpacks to a huge image is refused too), and decodable to the end."""
    if not data:
        raise BadRequest("no image was uploaded (the request body is empty)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadRequest(f"the upload is {len(data) / 2 ** 20:.1f} MiB; the limit is "
                         f"{MAX_UPLOAD_BYTES // 2 ** 20} MiB", 413)
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
            if fmt not in FORMATS:
                raise BadRequest(f"the upload is a {fmt} image; give one of {', '.join(FORMATS)}")
            side = MAX_SIDE[panel]
            if max(w, h) > side:
                raise BadRequest(f"the upload is {w}x{h} px; {panel} takes images up to {side} px a side")
            im.load()
    except BadRequest:
        raise
    except Image.UnidentifiedImageError:
        raise BadRequest(f"the upload is not an image (give a {', '.join(FORMATS)} file)") from None
    except Exception as e:      # PIL raises many types for a broken file
        raise BadRequest(f"the upload is a damaged image ({type(e).__name__}: {e})") from None
    return data


def _render(draw, name: str) -> bytes:
    """Run draw(path) with a file name of ours inside a fresh temporary folder; the bytes it wrote."""
    with tempfile.TemporaryDirectory(prefix="ganforge-serve-") as tmp:
        path = Path(tmp) / name
        draw(path)
        return path.read_bytes()


def display_name(ref: str) -> str:
    return str(ref) if zoo.is_ref(ref) else Path(ref).resolve().name


class Model:
    """One model of the command line: loaded once (ganforge.load; translators through translate's loader, one
    net per direction), described for the page (describe) and drawn from (the panel methods)."""

    def __init__(self, index: int, ref: str):
        self.index, self.ref = index, str(ref)
        self.g = load(ref)
        self.recipe, self.info = self.g.recipe, self.g.info
        self.nets = {}
        if isinstance(self.recipe, Translator):
            up = isinstance(self.recipe, Upscaler)
            for d in (None,) if up else self.recipe.directions():
                self.nets[d] = load_translator(ref, d, "cpu", upscale=up)[1]
        self._real = None

    # -- what the page shows --------------------------------------------------------------------------------
    def panels(self) -> list[str]:
        r = self.recipe
        if isinstance(r, Upscaler):
            return ["upscale"]
        if isinstance(r, Translator):
            return ["translate"]
        if not r.generates:
            return []
        out = ["sample"]
        if self.info.kind == "image" and not isinstance(r, ImageToImage):
            out.append("walk")
            if self.style_capable():
                out.append("style")
        return out

    def style_capable(self) -> bool:
        try:
            check_style_generator(self.g.G, self.ref)
        except GanforgeError:
            return False
        return True

    def message(self) -> str | None:
        r = self.recipe
        if not r.generates:
            return (f"{r.name} is a classifier, not a generator: there is nothing to draw from it here. "
                    f"Score it with `ganforge eval {self.ref}`.")
        if self.info.kind == "table":
            return "this model generates table rows: the sample panel shows them as CSV."
        return None

    def describe(self) -> dict:
        r, info = self.recipe, self.info
        labels = r.conditional and not isinstance(r, TextConditional) and info.num_classes > 0
        return {
            "index": self.index, "name": display_name(self.ref), "recipe": r.name, "kind": info.kind,
            "data": info.spec, "shape": list(info.shape), "step": self.g.step, "panels": self.panels(),
            "counts": list(self.counts()),
            "message": self.message(),
            "classes": (info.class_names or [str(k) for k in range(info.num_classes)]) if labels else [],
            "caption": DEFAULT_CAPTION if isinstance(r, TextConditional) else None,
            "truncation": "truncation" in r.sample_kwargs,
            "spaces": ["z", "w"] if "style" in self.panels() else ["z"],
            "bands": list(style_bands(self.g.G.resolution)) if "style" in self.panels() else [],
            "directions": [d for d in self.nets if d] if "translate" in self.panels() else [],
            "upload_limit": MAX_UPLOAD_BYTES,
            "max_side": max((MAX_SIDE[p] for p in self.panels() if p in MAX_SIDE), default=0),
        }

    def _need(self, panel: str) -> None:
        if panel not in self.panels():
            what = self.message() or f"this {self.recipe.name} model offers: {', '.join(self.panels())}"
            raise BadRequest(f"{display_name(self.ref)} has no {panel} panel ({what})")

    # -- the panels --------------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, ...]:
        return COUNTS[self.info.kind]

    def sample(self, n: int | None, seed: int, label: int | None = None, text: str | None = None,
               truncation: float | None = None) -> tuple[bytes, str]:
        """(bytes, media type) of what `ganforge sample` writes: an image grid or a scatter PNG, or CSV rows."""
        self._need("sample")
        n = self.counts()[0] if n is None else check_range("n", n, 1, max(self.counts()))
        check_range("seed", seed, *LIMITS["seed"])
        if isinstance(self.recipe, TextConditional) and not (text or "").strip():
            raise BadRequest("this text-to-image model draws from a caption: type one")
        if truncation is not None:
            check_range("truncation", truncation, 0.0, 1.0)
        x = self.g.sample(n, seed=seed, labels=label, text=text or None, truncation=truncation)
        suffix = sample_suffix(self.info.kind)
        if self.info.kind == "points" and self._real is None:
            self._real = real_points(self.g)
        data = _render(lambda p: self.g.save(x, p, real=self._real), "sample" + suffix)
        return data, ("text/csv; charset=utf-8" if suffix == ".csv" else "image/png")

    def walk(self, space: str, seed: int, frames: int, walks: int, truncation: float = 1.0,
             label: int | None = None) -> bytes:
        """An animated GIF of `ganforge interpolate`'s latent walk (4 key latents, a loop)."""
        self._need("walk")
        check_range("seed", seed, *LIMITS["seed"])
        check_range("frames", frames, *LIMITS["frames"]), check_range("walks", walks, *LIMITS["walks"])
        shots = latent_walk(self.g, space, walks, 4, frames, seed, truncation, label)
        return _render(lambda p: save_walk(shots, p, fps=12), "walk.gif")

    def style(self, seed: int, truncation: float, bands: tuple[str, ...] | None, rows: int, cols: int) -> bytes:
        """`ganforge style-mix`'s figure: sources A down the left, B along the top, one block per band (None:
        every band the resolution has)."""
        self._need("style")
        bands = bands or tuple(style_bands(self.g.G.resolution))
        check_range("seed", seed, *LIMITS["seed"])
        check_range("rows", rows, *LIMITS["rows"]), check_range("cols", cols, *LIMITS["cols"])
        bad = [b for b in bands if b not in BANDS]
        if bad:
            raise BadRequest(f"unknown style band {bad[0]!r}; choose from {', '.join(BANDS)}")
        images, nrow = style_mix_grid(self.g.G, rows, cols, seed, truncation, bands)
        width = nrow * (images.shape[-1] + 2) + 2          # viz.grid's: 2 px of padding around every cell
        return _render(lambda p: save_grid(images, p, nrow=nrow, upscale=max(1, AUTO_WIDTH // width)), "mix.png")

    def translate(self, data: bytes, direction: str | None = None, resize: bool = False) -> bytes:
        """The uploaded image translated (pix2pix, CycleGAN: `ganforge translate`), as a PNG."""
        self._need("translate")
        direction = direction or self.recipe.directions()[0]
        if direction not in self.nets:
            raise BadRequest(f"this {self.recipe.name} model translates {' and '.join(self.nets)}; got "
                             f"{direction!r}")
        return self._run_on(validate_upload(data, "translate"), self.nets[direction], direction, resize)

    def upscale(self, data: bytes) -> bytes:
        """The uploaded image super-resolved (`ganforge upscale`), as a PNG."""
        self._need("upscale")
        return self._run_on(validate_upload(data, "upscale"), self.nets[None], None, False)

    def _run_on(self, data: bytes, G, direction: str | None, resize: bool) -> bytes:
        channels = self.recipe.input_shape(direction)[0]
        x = read_image(io.BytesIO(data), channels)
        y = apply(self.recipe, G, x, resize, seed=0)
        return _render(lambda p: write_image(y, p), "out.png")


def load_models(refs: list[str]) -> list[Model]:
    """Every model of the command line, loaded before the server starts: a bad one is one error naming it."""
    if not refs:
        raise GanforgeError("give at least one run directory, checkpoint or export folder, or zoo:NAME")
    models = []
    for i, ref in enumerate(refs):
        try:
            models.append(Model(i, ref))
        except GanforgeError as e:
            raise (e if str(ref) in str(e) else GanforgeError(f"{ref}: {e}")) from None
    return models
