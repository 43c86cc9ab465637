"""`ganforge invert RUN IMAGE... [--interpolate]`: project real images into a generator's latent space
(Zhu et al. 2016, "Generative visual manipulation on the natural image manifold", arXiv:1609.03552, eq. 2):

  z* = argmin_z  ||G(z) - x||^2  +  lambda_f ||phi(G(z)) - phi(x)||^2

solved by Adam from the best of `restarts` random latents (the paper's optimization branch; its learned
encoder initialization is replaced by random restarts). For StyleGAN runs the search is over w (one w per
image, shared by every layer), starting from w_avg, which the StyleGAN papers show inverts better than z.
phi is the offline perceptual net (models/perceptual.py, RandomConvFeatures); lambda_f = --feature-weight
(0 = pixels only). Writes, per image, `<stem>-inverted.png` (original | reconstruction) and
`<stem>-latent.safetensors` (the latent, with its space and error); `--interpolate` also walks from the first
image's latent to the second's (slerp in z, lerp in w) and writes the strip: editing real images through
the latent space.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ..runs import load, samples_dir
from ..data.images import _open, set_channels
from ..errors import GanforgeError
from ..models.perceptual import build_feature_net
from ..recipes.base import ImageToImage
from ..viz import save_grid
from . import out_dir
from .interpolate import lerp, slerp


def _is_style(G) -> bool:
    return all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws", "w_avg"))


def _render(g, latent: Tensor, space: str, labels: Tensor | None) -> Tensor:
    G = g.G
    if space == "w":
        return G.synthesis(latent.unsqueeze(1).expand(-1, G.num_ws, -1), noise="const")
    return g.recipe.generate(G, latent, labels)


def per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def project(g, images: Tensor, steps: int = 300, lr: float = 0.05, restarts: int = 16,
            feature_weight: float = 0.0, labels: Tensor | None = None, seed: int = 0) -> dict:
    """Invert `images` (N x C x H x W in [-1, 1], the generator's shape) through a loaded ganforge.Generator.

    Returns {"latent": N x d, "space": "z" | "w", "reconstruction": N x C x H x W, "error": per-image MSE,
    "initial_error": per-image MSE of the starting latent, "random_error": mean per-image MSE of random latents}.
    """
    G, recipe = g.G.eval(), g.recipe
    if g.info.kind != "image" or tuple(images.shape[1:]) != tuple(g.info.shape):
        raise GanforgeError(f"invert needs images of shape {tuple(g.info.shape)} for this {recipe.name} run; "
                            f"got {tuple(images.shape[1:])}")
    if steps < 0 or restarts < 1 or lr <= 0 or feature_weight < 0:
        raise GanforgeError("invert needs --steps >= 0, --restarts >= 1, --lr > 0 and --feature-weight >= 0")
    device = next(G.parameters()).device
    x = images.to(device).float()
    labels = labels.to(device) if labels is not None else None
    n = x.shape[0]
    for p in G.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    space = "w" if _is_style(G) else "z"
    if isinstance(recipe, ImageToImage):
        raise GanforgeError(f"{recipe.name} maps images to images (its input is not a latent vector); "
                            f"invert works on latent-variable generators (dcgan, gan, cgan, stylegan, ...)")
    with torch.no_grad():
        # the best of `restarts` random latents per image; also the random-latent baseline
        cands = [recipe.noise(n, "cpu", generator=gen).to(device) for _ in range(restarts)]
        if space == "w":
            cands = [G.mapping(z) for z in cands]
        errs = torch.stack([per_image_mse(_render(g, c, space, labels), x) for c in cands])    # R x N
        random_error = errs.mean(0)
        best = errs.argmin(0)
        latent = torch.stack([cands[int(best[i])][i] for i in range(n)])
        if space == "w":   # w_avg competes with the restarts (it is the usual starting point)
            avg = G.w_avg.expand(n, -1)
            e_avg = per_image_mse(_render(g, avg, space, labels), x)
            latent = torch.where((e_avg < errs.min(0).values)[:, None], avg, latent)
        initial_error = per_image_mse(_render(g, latent, space, labels), x)
    phi = None
    if feature_weight > 0:
        phi = build_feature_net("random", channels=x.shape[1])[0].to(device).eval()
        with torch.no_grad():
            target_features = phi(x)
    latent = latent.clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=lr)
    for _ in range(steps):
        fake = _render(g, latent, space, labels)
        # sum over images: each image's latent gets the gradient of its own loss, whatever N is
        loss = per_image_mse(fake, x).sum()
        if phi is not None:
            loss = loss + feature_weight * (phi(fake) - target_features).pow(2).flatten(1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        recon = _render(g, latent, space, labels).float()
    return {"latent": latent.detach(), "space": space, "reconstruction": recon,
            "error": per_image_mse(recon, x).cpu(), "initial_error": initial_error.cpu(),
            "random_error": random_error.cpu()}


def read_images(paths: list[str], shape: tuple[int, ...]) -> Tensor:
    """Image files -> N x C x H x W in [-1, 1] at the generator's channels and resolution (short side
    resized, centre crop: the same framing as folder: data)."""
    import numpy as np

    out = []
    for p in paths:
        if not Path(p).is_file():
            raise GanforgeError(f"image {p!r} does not exist; give image files to invert")
        try:
            a, _ = _open(Path(p), shape[-1])
        except Exception as e:   # PIL raises many types for a broken file
            raise GanforgeError(f"cannot read image {p!r} ({type(e).__name__}: {e})") from None
        out.append(set_channels(torch.from_numpy(np.array(a, copy=True))[None], shape[0]))
    return torch.cat(out).float() / 127.5 - 1.0


def invert(run, images, out=None, *, steps: int = 300, lr: float = 0.05, restarts: int = 16,
           feature_weight: float = 0.0, label: int | None = None, seed: int = 0, interpolate: bool = False,
           frames: int = 8) -> dict:
    """Project image files (`images`: a path or a list) into the latent space of a run (project() above) and
    write, into `out` (default RUN/inverted), per image <stem>-inverted.png (original | reconstruction) and
    <stem>-latent.safetensors, plus inversion.json; interpolate=True also writes interpolation.png, the walk
    from the first image's latent to the second's in `frames` frames. label: the images' class (conditional
    recipes, required there). Returns inversion.json's content with "files" (per image: the two paths),
    "initial_mse" and, with interpolate, "interpolation" (its path)."""
    images = [str(images)] if isinstance(images, (str, Path)) else [str(p) for p in images]
    if interpolate and len(images) < 2:
        raise GanforgeError("--interpolate needs two images: ganforge invert RUN A.png B.png --interpolate")
    if frames < 2:
        raise GanforgeError(f"--frames must be >= 2; got {frames}")
    out = out_dir(out if out else samples_dir(run).parent / "inverted")   # before the optimization runs
    g = load(run)
    x = read_images(images, g.info.shape)
    labels = _labels(g, label, x.shape[0])
    r = project(g, x, steps, lr, restarts, feature_weight, labels, seed)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, path in enumerate(images):
        stem = Path(path).stem
        files.append({"inverted": str(out / f"{stem}-inverted.png"), "latent": str(out / f"{stem}-latent.safetensors")})
        save_grid(torch.stack([x[i], r["reconstruction"][i].cpu()]), files[-1]["inverted"], nrow=2)
        meta = {"run": str(run), "image": str(path), "space": r["space"], "mse": f"{r['error'][i]:.6f}",
                "steps": str(steps), "feature_weight": str(feature_weight)}
        save_file({r["space"]: r["latent"][i:i + 1].cpu().contiguous()}, files[-1]["latent"], metadata=meta)
    summary = {"images": images, "space": r["space"], "mse": r["error"].tolist(),
               "random_latent_mse": r["random_error"].tolist(), "steps": steps, "feature_weight": feature_weight}
    (out / "inversion.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary.update(files=files, initial_mse=r["initial_error"].tolist())
    if interpolate:
        a, b = r["latent"][0:1], r["latent"][1:2]
        mix = slerp if r["space"] == "z" else lerp
        with torch.no_grad():
            walk = [_render(g, mix(a, b, t / (frames - 1)), r["space"], None if labels is None else labels[:1])
                    for t in range(frames)]
        strip = torch.cat([x[0:1].to(walk[0].device), *walk, x[1:2].to(walk[0].device)]).float().clamp(-1, 1)
        summary["interpolation"] = str(save_grid(strip, out / "interpolation.png", nrow=strip.shape[0]))
    return summary


def _labels(g, label: int | None, n: int) -> Tensor | None:
    """The images' class as a tensor (conditional recipes need one; unconditional ones take none)."""
    conditional = g.recipe.conditional
    if label is None:
        if conditional:
            raise GanforgeError(f"{g.recipe.name} is conditional: give the images' class with --label K")
        return None
    k = g.info.num_classes
    if not conditional:
        raise GanforgeError(f"this {g.recipe.name} generator is unconditional; drop --label")
    if not 0 <= label < k:
        raise GanforgeError(f"--label must be a class of this run (0..{k - 1}); got {label}")
    return torch.full((n,), label, dtype=torch.long)


def run(args) -> int:
    r = invert(args.run, args.images, args.out, steps=args.steps, lr=args.lr, restarts=args.restarts,
               feature_weight=args.feature_weight, label=args.label, seed=args.seed,
               interpolate=args.interpolate, frames=args.frames)
    for i, path in enumerate(r["images"]):
        print(f"{path}: mse {r['mse'][i]:.4f} (start {r['initial_mse'][i]:.4f}, random latent "
              f"{r['random_latent_mse'][i]:.4f}) -> {r['files'][i]['inverted']}")
    if "interpolation" in r:
        print(r["interpolation"])
    return 0
