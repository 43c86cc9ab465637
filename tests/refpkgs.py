"""The reference packages ganforge's metrics are compared with, installed by the tests themselves.

`pip install --no-deps --target` into a cache folder ($GANFORGE_REFPKGS, else ~/.cache/ganforge/refpkgs), pinned
versions, skipped cleanly when pip cannot reach the registry. torchvision has no CPU build here and ganforge must
not need it: the packages only import a few names from it, so a stub in sys.modules provides them — ToTensor /
pil_to_tensor / normalize / Compose with torchvision's documented semantics, and for pytorch-fid's and clean-fid's
Inception (which subclass torchvision's blocks) torch-fidelity's own torchvision-derived blocks, and for dgm-eval's
encoders Resize (a PIL image's own resize, as torchvision calls it), Normalize and to_tensor.

dgm-eval (Stein et al. 2023's FD-DINOv2 code) is not on PyPI: `require_checkout` uses its source tree at the pinned
commit when it lies in the cache folder, and skips saying where to put it otherwise.

`measure` records each measured difference (printed with -s; appended as JSON lines to $GANFORGE_PARITY_LOG,
which benchmarks/parity.py reads to print the table in docs/metrics.md).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

VERSIONS = {"torch-fidelity": "0.4.0", "pytorch-fid": "0.3.0", "clean-fid": "0.1.35", "prdc": "0.2",
            "dinov2": "0.0.1.dev2"}
MODULES = {"torch-fidelity": "torch_fidelity", "pytorch-fid": "pytorch_fid", "clean-fid": "cleanfid",
           "prdc": "prdc", "dinov2": "dinov2"}
CHECKOUTS = {"dgm-eval": ("74c79f7", "layer6ai-labs/dgm-eval")}     # not on PyPI: its git tree at this commit


def measure(pair: str, what: str, got, want, bound: float, kind: str = "rel") -> float:
    """The difference of `got` from the reference's `want` (arrays: the max over elements), recorded with its
    bound: kind "rel" returns max |got - want| / max |want|, "abs" returns max |got - want|."""
    g = np.asarray(got.detach().cpu() if torch.is_tensor(got) else got, dtype=np.float64)
    w = np.asarray(want.detach().cpu() if torch.is_tensor(want) else want, dtype=np.float64)
    diff = float(np.abs(g - w).max())
    rel = diff / max(float(np.abs(w).max()), 1e-300)
    row = {"pair": pair, "what": what, "abs": diff, "rel": rel, "bound": bound, "kind": kind}
    print(f"PARITY {pair} | {what} | max abs {diff:.3g} | rel {rel:.3g} | bound ({kind}) {bound:g}")
    if os.environ.get("GANFORGE_PARITY_LOG"):
        with open(os.environ["GANFORGE_PARITY_LOG"], "a") as f:
            f.write(json.dumps(row) + "\n")
    return rel if kind == "rel" else diff


def _root() -> Path:
    return Path(os.environ.get("GANFORGE_REFPKGS") or Path.home() / ".cache" / "ganforge" / "refpkgs")


def require(package: str):
    """The reference package's module (installed on first use), or skip the test saying why."""
    version = VERSIONS[package]
    target = _root() / f"{package}-{version}"
    if not (target / MODULES[package]).is_dir():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
               "--target", str(target), f"{package}=={version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot install {package}=={version} ({e})")
        if done.returncode != 0:
            pytest.skip(f"cannot install {package}=={version}: {done.stderr.strip().splitlines()[-1:]}")
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    stub_torchvision()
    return importlib.import_module(MODULES[package])


def installed_version(package: str) -> str:
    """The version in the dist-info that pip wrote into the package's cache folder."""
    dist = package.replace("-", "_")
    (info,) = (_root() / f"{package}-{VERSIONS[package]}").glob(f"{dist}-*.dist-info")
    return info.name[len(dist) + 1:-len(".dist-info")]


def require_checkout(package: str, *modules: str):
    """Modules of a reference that installs only from its git repository, loaded from its tree at the pinned
    commit in the cache folder (the package's __init__ files are not run: dgm-eval's import every encoder, and
    with them timm, open_clip and transformers), or skip saying where the tree goes."""
    commit, repo = CHECKOUTS[package]
    target = _root() / f"{package}-{commit}"
    top = package.replace("-", "_")
    if not (target / top).is_dir():
        pytest.skip(f"{package} is not on PyPI: put the {top}/ folder of {repo} at commit {commit} in {target} "
                    f"to compare with it")
    stub_torchvision()
    out = []
    for name in modules:
        parts = name.split(".")
        for i in range(1, len(parts)):              # namespace parents, so the modules' relative imports resolve
            pkg = ".".join(parts[:i])
            if pkg not in sys.modules:
                m = types.ModuleType(pkg)
                m.__path__ = [str(target.joinpath(*parts[:i]))]
                sys.modules[pkg] = m
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, target.joinpath(*parts).with_suffix(".py"))
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        out.append(sys.modules[name])
    return out


class ToTensor:
    """torchvision.transforms.ToTensor: H x W x C -> C x H x W; uint8 (and PIL images) scaled by 1/255."""

    def __call__(self, pic):
        a = np.array(pic)
        a = a[:, :, None] if a.ndim == 2 else a
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
        return t.float().div(255) if t.dtype == torch.uint8 else t


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


def pil_to_tensor(pic):
    a = np.array(pic)
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def normalize(x, mean, std, inplace=False):
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x if inplace else x.clone()).sub_(mean).div_(std)


class Normalize:
    def __init__(self, mean, std, inplace=False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, x):
        return normalize(x, self.mean, self.std, self.inplace)


class InterpolationMode:
    NEAREST, BILINEAR, BICUBIC = "nearest", "bilinear", "bicubic"


class Resize:
    """torchvision.transforms.Resize((h, w), mode) on a PIL image: PIL's own resize to (w, h) with that filter
    (torchvision's _functional_pil.resize)."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR):
        assert len(size) == 2, "only (h, w) sizes are stubbed"
        self.size, self.interpolation = size, interpolation

    def __call__(self, img):
        filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
        return img.resize((self.size[1], self.size[0]), filters[self.interpolation])


def stub_torchvision() -> None:
    # clean-fid imports requests for its downloads only; the tests download nothing
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    if "torchvision" in sys.modules:
        return
    tv = types.ModuleType("torchvision")
    tv.__version__ = "0.20.0"       # pytorch-fid reads it to pick init_weights=False / weights=None
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.ToTensor, tv.transforms.Compose = ToTensor, Compose
    tv.transforms.Resize, tv.transforms.Normalize, tv.transforms.InterpolationMode = Resize, Normalize, InterpolationMode
    tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    tv.transforms.functional.pil_to_tensor, tv.transforms.functional.normalize = pil_to_tensor, normalize
    tv.transforms.functional.to_tensor = ToTensor()
    tv.datasets = types.ModuleType("torchvision.datasets")
    for name in ("CIFAR10", "CIFAR100", "STL10"):
        setattr(tv.datasets, name, type(name, (), {}))
    tv.models = types.ModuleType("torchvision.models")
    tv.models.inception = types.ModuleType("torchvision.models.inception")
    for m in (tv, tv.transforms, tv.transforms.functional, tv.datasets, tv.models, tv.models.inception):
        sys.modules[m.__name__] = m
    tv.models.inception.__getattr__ = _inception_block
    tv.models.inception_v3 = _inception_v3


def _inception_block(name):
    """torchvision.models.inception's blocks, from torch-fidelity (its copies of them, same module names)."""
    tfi = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    blocks = {"BasicConv2d": tfi.BasicConv2d, "InceptionA": tfi.InceptionA, "InceptionB": tfi.InceptionB,
              "InceptionC": tfi.InceptionC, "InceptionD": tfi.InceptionD, "InceptionE": tfi.InceptionE_1}
    if name not in blocks:
        raise AttributeError(name)
    return blocks[name]


def _inception_v3(num_classes=1000, aux_logits=True, **_):
    """torchvision's Inception3 layout without the aux head: the stem, Mixed_5b..7c, fc (pytorch-fid and
    clean-fid replace the Mixed blocks with their FID versions and keep the stem)."""
    assert not aux_logits
    b = _inception_block
    net = nn.Module()
    net.Conv2d_1a_3x3 = b("BasicConv2d")(3, 32, kernel_size=3, stride=2)
    net.Conv2d_2a_3x3 = b("BasicConv2d")(32, 32, kernel_size=3)
    net.Conv2d_2b_3x3 = b("BasicConv2d")(32, 64, kernel_size=3, padding=1)
    net.Conv2d_3b_1x1 = b("BasicConv2d")(64, 80, kernel_size=1)
    net.Conv2d_4a_3x3 = b("BasicConv2d")(80, 192, kernel_size=3)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = b("InceptionA")(192, 32), b("InceptionA")(256, 64), b("InceptionA")(288, 64)
    net.Mixed_6a = b("InceptionB")(288)
    net.Mixed_6b = b("InceptionC")(768, 128)
    net.Mixed_6c, net.Mixed_6d, net.Mixed_6e = (b("InceptionC")(768, c) for c in (160, 160, 192))
    net.Mixed_7a = b("InceptionD")(768)
    net.Mixed_7b, net.Mixed_7c = b("InceptionE")(1280), b("InceptionE")(2048)
    net.fc = nn.Linear(2048, num_classes)
    return net
