"""DINOv2 (metrics/dinov2.py) against Meta's own code (the `dinov2` package) run through torch-fidelity's
DINOv2 feature extractor, with one shared random weights file loaded strictly into both."""
import pytest
import torch

import refpkgs
from ganforge.errors import GanforgeError
from ganforge.metrics.dinov2 import DINOv2, load_dinov2


def official(arch):
    refpkgs.require("torch-fidelity")      # the torchvision stub's blocks come from it
    refpkgs.require("dinov2")
    from dinov2.models import vision_transformer as vit
    make = {"vitb14": vit.vit_base, "vitl14": vit.vit_large}[arch]
    # drop_path_uniform: no torch.linspace(...).item() at build time (the layout test builds on the meta device)
    return make(patch_size=14, img_size=518, init_values=1.0, block_chunks=0, drop_path_uniform=True)


def test_layouts_equal_the_official_vitb14_and_vitl14():
    for arch in ("vitb14", "vitl14"):
        with torch.device("meta"):
            ours, ref = DINOv2(arch), official(arch)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


def test_vitb14_features_equal_torch_fidelity_with_official_code(tmp_path, monkeypatch):
    tfid = refpkgs.require("torch-fidelity")
    ref = official("vitb14")
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) * 0.02 + (1.0 if k.endswith(("norm1.weight", "norm2.weight",
                                                                              "norm.weight")) else 0.0)
             for k, v in ref.state_dict().items()}
    torch.save(state, tmp_path / "dinov2_vitb14_pretrain.pth")
    ref.load_state_dict(state, strict=True)
    monkeypatch.setattr(torch.hub, "load", lambda *a, **k: ref)      # torch-fidelity's hub call, offline
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2
    fe = FeatureExtractorDinoV2("dinov2-vit-b-14", ["dinov2"])
    u8 = torch.randint(0, 256, (2, 3, 40, 40), generator=g, dtype=torch.uint8)
    (want,) = fe(u8)
    model = load_dinov2(tmp_path / "dinov2_vitb14_pretrain.pth")
    with torch.no_grad():
        got = model(u8.float() / 127.5 - 1)["cls"]
    assert model.arch == "vitb14" and model.protocol["canonical"] is None and len(model.protocol["weights_sha256"]) == 64
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    assert tfid.__version__ == refpkgs.VERSIONS["torch-fidelity"]
    torch.save({"cls_token": torch.zeros(1, 1, 5)}, tmp_path / "bad.pth")
    with pytest.raises(GanforgeError, match="not a DINOv2"):
        load_dinov2(tmp_path / "bad.pth")
