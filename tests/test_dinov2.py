"""DINOv2 (metrics/dinov2.py) under each protocol against the package whose DINOv2 input that protocol names
(metrics/protocols.py DINOV2), with Meta's own network code (the `dinov2` package) and one shared random weights
file loaded strictly into both:

- tf: torch-fidelity's FeatureExtractorDinoV2 (installed from PyPI by the test);
- pytorch-fid and clean: dgm-eval's DINOv2Encoder, default and --clean_resize. dgm-eval is not on PyPI, so those
  tests run where its tree lies in the reference cache (tests/refpkgs.py require_checkout) and skip elsewhere;
  the resizes it uses are compared everywhere with clean-fid's make_resizer, which does the same PIL calls.

Measured differences: `python benchmarks/parity.py` (docs/metrics.md, "Parity with the reference implementations").
"""
import numpy as np
import pytest
import torch
from PIL import Image

import refpkgs
from ganforge.errors import GanforgeError
from ganforge.metrics import protocols
from ganforge.metrics.dinov2 import DINOv2, load_dinov2

MEAN, STD = protocols.IMAGENET_MEAN, protocols.IMAGENET_STD


def official(arch):
    refpkgs.require("torch-fidelity")      # the torchvision stub's blocks come from it
    refpkgs.require("dinov2")
    from dinov2.models import vision_transformer as vit
    make = {"vitb14": vit.vit_base, "vitl14": vit.vit_large}[arch]
    # drop_path_uniform: no torch.linspace(...).item() at build time (the layout test builds on the meta device)
    return make(patch_size=14, img_size=518, init_values=1.0, block_chunks=0, drop_path_uniform=True)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Meta's ViT-B/14 with random weights, and the same weights saved as dinov2_vitb14_pretrain.pth."""
    ref = official("vitb14")
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) * 0.02 + (1.0 if k.endswith(("norm1.weight", "norm2.weight",
                                                                              "norm.weight")) else 0.0)
             for k, v in ref.state_dict().items()}
    path = tmp_path_factory.mktemp("dino") / "dinov2_vitb14_pretrain.pth"
    torch.save(state, path)
    ref.load_state_dict(state, strict=True)
    return ref.eval(), path


def images(seed=0, n=2, h=40, w=37):
    """8-bit RGB images (h x w: no protocol's resize to 224 is an exact scale) as uint8 N x 3 x h x w."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def ours(u8, protocol):
    return protocols.prepare(u8.float() / 127.5 - 1, protocol, 224, "imagenet")


def test_layouts_equal_the_official_vitb14_and_vitl14():
    for arch in ("vitb14", "vitl14"):
        with torch.device("meta"):
            mine, ref = DINOv2(arch), official(arch)
        assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


def test_dinov2_input_of_each_protocol_equals_its_reference_resize():
    """The three inputs bit for bit: torch-fidelity's TF1 bilinear and, for dgm-eval's two pipelines, the same PIL
    calls through clean-fid's make_resizer (8-bit bicubic = torchvision's Resize on a PIL image; float bicubic =
    dgm-eval's pil_resize), each followed by torchvision's Normalize as the reference orders it."""
    refpkgs.require("torch-fidelity")
    refpkgs.require("clean-fid")
    from cleanfid.resize import make_resizer
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
    u8 = images()
    tf = interpolate_bilinear_2d_like_tensorflow1x(u8.float(), size=(224, 224), align_corners=False)
    want = {"tf": refpkgs.normalize(tf, [255 * m for m in MEAN], [255 * s for s in STD])}
    for protocol, quantize in (("pytorch-fid", True), ("clean", False)):
        # quantize: PIL's resize of the uint8 RGB image; else one float ('F') image per channel, clipped
        resize = make_resizer("PIL", quantize, "bicubic", (224, 224))
        out = [refpkgs.ToTensor()(resize(a if quantize else a.astype(np.float32))) for a in u8.permute(0, 2, 3, 1).numpy()]
        out = [t if quantize else t / 255 for t in out]     # ToTensor scales uint8 only; dgm-eval's pil_resize / 255
        want[protocol] = torch.stack([refpkgs.normalize(t, MEAN, STD) for t in out])
    for protocol, w in want.items():
        got = ours(u8, protocol)
        refpkgs.measure(f"{protocol} / dinov2", "224x224 input (vs reference resize)", got, w, 0.0, "abs")
        assert torch.equal(got, w), protocol
    assert not torch.equal(ours(u8, "pytorch-fid"), ours(u8, "clean"))
    # a grey image reaches DINOv2 as the reference reads a grey PNG: RGB with three equal channels
    grey = u8[:, :1]
    assert torch.equal(ours(grey, "pytorch-fid"), ours(grey.repeat(1, 3, 1, 1), "pytorch-fid"))


def test_tf_vitb14_features_equal_torch_fidelity_with_official_code(shared, monkeypatch):
    tfid = refpkgs.require("torch-fidelity")
    ref, path = shared
    monkeypatch.setattr(torch.hub, "load", lambda *a, **k: ref)      # torch-fidelity's hub call, offline
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2
    fe = FeatureExtractorDinoV2("dinov2-vit-b-14", ["dinov2"])
    u8 = images(1)
    (want,) = fe(u8)
    model = load_dinov2(path, protocol="tf")
    with torch.no_grad():
        got = model(u8.float() / 127.5 - 1)["cls"]
    assert model.arch == "vitb14" and model.protocol["canonical"] is None and len(model.protocol["weights_sha256"]) == 64
    assert model.protocol["protocol"] == "tf" and "torch-fidelity" in model.protocol["reference"]
    assert refpkgs.measure("tf / dinov2", "ViT-B/14 class token (torch-fidelity FeatureExtractorDinoV2)",
                           got, want, 1e-4) <= 1e-4
    assert tfid.__version__ == refpkgs.VERSIONS["torch-fidelity"]


def dgm_eval_inputs(protocol, u8):
    """dgm-eval's DINOv2Encoder (default, or --clean_resize for `clean`) and its transform of each PIL RGB image,
    as its ImagePathDataset reads PNGs; torch.hub.load must already give the network."""
    (dgm_dino,) = refpkgs.require_checkout("dgm-eval", "dgm_eval.models.dinov2")
    enc = dgm_dino.DINOv2Encoder(arch="vitb14", clean_resize=protocol == "clean")
    return enc, torch.stack([enc.transform(Image.fromarray(a)) for a in u8.permute(0, 2, 3, 1).numpy()])


@pytest.mark.parametrize("protocol", ["pytorch-fid", "clean"])
def test_dinov2_input_equals_dgm_eval_transform(monkeypatch, protocol):
    monkeypatch.setattr(torch.hub, "load", lambda *a, **k: torch.nn.Identity())
    u8 = images(3, n=3, h=23, w=61)
    _, want = dgm_eval_inputs(protocol, u8)
    got = ours(u8, protocol)
    refpkgs.measure(f"{protocol} / dinov2", "224x224 input (vs dgm-eval DINOv2Encoder.transform)", got, want, 0.0,
                    "abs")
    assert torch.equal(got, want)


@pytest.mark.slow     # two ViT-B/14 passes at 224x224 per protocol and a 350 MB weights file: ~25 s on a shared core
@pytest.mark.parametrize("protocol", ["pytorch-fid", "clean"])
def test_vitb14_features_equal_dgm_eval(shared, monkeypatch, protocol):
    """dgm-eval's transform, then its forward (Meta's network from torch.hub, here the shared one), against
    ganforge's DINOv2 loaded from the same file under the protocol."""
    ref, path = shared
    monkeypatch.setattr(torch.hub, "load", lambda *a, **k: ref)
    u8 = images(2)
    enc, x = dgm_eval_inputs(protocol, u8)
    model = load_dinov2(path, protocol=protocol)
    with torch.no_grad():
        want, got = enc(x), model(u8.float() / 127.5 - 1)["cls"]
    assert model.protocol["protocol"] == protocol and "dgm-eval" in model.protocol["reference"]
    assert refpkgs.measure(f"{protocol} / dinov2", "ViT-B/14 class token (dgm-eval DINOv2Encoder)", got, want,
                           1e-4) <= 1e-4


def test_not_a_dinov2_file_is_one_error(tmp_path):
    torch.save({"cls_token": torch.zeros(1, 1, 5)}, tmp_path / "bad.pth")
    with pytest.raises(GanforgeError, match="not a DINOv2"):
        load_dinov2(tmp_path / "bad.pth")
    with pytest.raises(GanforgeError, match="unknown protocol"):
        load_dinov2(tmp_path / "bad.pth", protocol="tensorflow")


def test_every_protocol_names_its_dinov2_input_and_what_it_is_comparable_to():
    from ganforge.metrics import record
    assert set(protocols.DINOV2) == set(protocols.PROTOCOLS)
    assert "dgm-eval" in record.comparable("pytorch-fid", "dinov2")
    assert "torch-fidelity" in record.comparable("tf", "dinov2")
    assert "--clean_resize" in record.comparable("clean", "dinov2")
    assert "clean-fid" in record.comparable("clean", "inception")
    with pytest.raises(GanforgeError, match="unknown input normalisation"):
        protocols.prepare(images().float() / 127.5 - 1, "tf", 224, "dino")
