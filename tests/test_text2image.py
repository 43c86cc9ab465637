"""text2image (Reed 2016, GAN-CLS / GAN-INT), the shapes:captions data and the attribute classifier."""
import math

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.api import load_data, make_config
from ganforge.data import resolve
from ganforge.data.captions import parse_attributes
from ganforge.data.specs_text import caption_vocabulary, encode_captions
from ganforge.errors import GanforgeError
from ganforge.metrics.attributes import attribute_accuracy, load_attribute_classifier, report
from ganforge.recipes.base import StepContext
from ganforge.recipes.text2image import SAMPLE_CAPTIONS, TextEncoder, matching_aware_d
from ganforge.training import checkpoint

SMALL = {"data": "shapes:captions:32", "resolution": 8, "g_width": 8, "d_width": 8, "embed_dim": 8,
         "text_dim": 8, "proj_dim": 8, "z_dim": 8}
TINY = {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 8}


def recipe_for(**kw):
    cls, cfg = make_config("text2image", overrides={**SMALL, **kw})
    data, info = load_data(cfg)
    return cls(cfg, info), data


def ctx_for(data, step=0, n=8):
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data), generator=g)[:n]
    return StepContext(step, lambda: data.batch(idx), torch.device("cpu"), n)


# -- the matching-aware loss -------------------------------------------------------------------------------
def test_matching_aware_loss_has_its_three_terms_with_weights_one_half_half():
    r, w, f = torch.tensor([0.3, -1.0]), torch.tensor([2.0, 0.5]), torch.tensor([-0.7, 1.5])
    expected = -(torch.log(torch.sigmoid(r)).mean()
                 + 0.5 * (torch.log(1 - torch.sigmoid(w)).mean() + torch.log(1 - torch.sigmoid(f)).mean()))
    assert torch.allclose(matching_aware_d(real_logits=r, wrong_logits=w, fake_logits=f), expected)
    r, w, f = (t.clone().requires_grad_(True) for t in (r, w, f))
    matching_aware_d(real_logits=r, wrong_logits=w, fake_logits=f).backward()
    # D's loss falls as the right pair scores higher and as the wrong pair / fake score lower
    assert (r.grad < 0).all() and (w.grad > 0).all() and (f.grad > 0).all()
    assert torch.allclose(r.grad, -torch.sigmoid(-r.detach()) / 2)
    assert torch.allclose(w.grad, 0.5 * torch.sigmoid(w.detach()) / 2)
    assert torch.allclose(f.grad, 0.5 * torch.sigmoid(f.detach()) / 2)
    # at s_r = s_w = s_f = 1/2 the loss is log 2 + log 2
    zero = torch.zeros(3)
    assert math.isclose(matching_aware_d(real_logits=zero, wrong_logits=zero, fake_logits=zero).item(),
                        2 * math.log(2), rel_tol=1e-6)


def test_d_step_scores_real_image_with_wrong_text_only_with_matching():
    torch.manual_seed(0)
    rec, data = recipe_for(matching=True)
    nets = rec.build()
    ctx = ctx_for(data)
    out = rec.d_loss(nets, ctx)
    assert "acc_wrong" in out
    rec.cfg.matching = False
    torch.manual_seed(0)
    plain = rec.d_loss(nets, ctx_for(data))
    assert "acc_wrong" not in plain and not torch.isclose(out["loss"], plain["loss"])
    # the plain conditional D loss is the ns loss on (real, right text) vs (fake, right text)
    assert plain["loss"].item() > 0


def test_near_miss_wrong_text_scores_the_images_own_near_miss_caption():
    rec, data = recipe_for(wrong_text="near_miss")
    nets = rec.build()
    torch.manual_seed(0)                      # the batch's caption draw, as in the d_loss calls below
    batch = ctx_for(data).batch
    with torch.no_grad():
        phi = nets["D"].text(batch["text"])
        feats = nets["D"].body(batch["real"])
        expected = {kind: nets["D"].score(feats, wrong).sigmoid().lt(0.5).float().mean().item()
                    for kind, wrong in (("near_miss", nets["D"].text(batch["wrong"])), ("shuffled", phi.roll(1, 0)))}
    torch.manual_seed(0)
    near = rec.d_loss(nets, ctx_for(data))
    rec.cfg.wrong_text = "shuffled"
    torch.manual_seed(0)
    shuffled = rec.d_loss(nets, ctx_for(data))
    # acc_wrong is the share of (real, wrong text) pairs D rejects: computed on the near misses, then the shuffle
    assert expected["near_miss"] != expected["shuffled"]
    assert math.isclose(near["acc_wrong"].item(), expected["near_miss"], abs_tol=1e-6)
    assert math.isclose(shuffled["acc_wrong"].item(), expected["shuffled"], abs_tol=1e-6)
    assert not torch.isclose(near["loss"], shuffled["loss"])


def test_near_miss_needs_data_that_provide_them():
    rec, _ = recipe_for(wrong_text="near_miss")
    rec.info.extra.pop("near_miss")
    with pytest.raises(GanforgeError, match="near_miss"):
        rec.build()


def test_interpolate_adds_the_int_term_and_beta_moves_it():
    rec, data = recipe_for(interpolate=False)
    torch.manual_seed(0)
    nets = rec.build()
    torch.manual_seed(1)
    base = rec.g_loss(nets, ctx_for(data))
    assert "interp" not in base and torch.equal(base["loss"], base["cond"])
    rec.cfg.interpolate = True
    torch.manual_seed(1)
    half = rec.g_loss(nets, ctx_for(data))
    assert torch.allclose(half["loss"], half["cond"] + half["interp"]) and torch.equal(half["cond"], base["cond"])
    rec.cfg.beta = 1.0      # beta = 1: the "interpolated" embedding is the caption's own
    torch.manual_seed(1)
    one = rec.g_loss(nets, ctx_for(data))
    assert not torch.equal(one["interp"], half["interp"])


def test_text_encoders_gru_sees_word_order_bag_does_not_and_padding_is_ignored():
    torch.manual_seed(0)
    a = torch.tensor([[5, 6, 7, 0, 0]])
    b = torch.tensor([[7, 6, 5, 0, 0]])
    longer = torch.tensor([[5, 6, 7, 0, 0, 0, 0]])
    gru, bag = TextEncoder(10, 4, 6, "gru"), TextEncoder(10, 4, 6, "bag")
    assert torch.allclose(bag(a), bag(b)) and not torch.allclose(gru(a), gru(b))
    assert torch.allclose(gru(a), gru(longer)) and torch.allclose(bag(a), bag(longer))


def test_d_view_augments_and_noises_what_d_sees_and_noise_anneals_to_zero():
    rec, data = recipe_for()
    x = data.batch(torch.arange(8))["real"].float()
    assert torch.equal(rec.d_view(x, 0), x)                    # both off: D sees the image itself
    rec.cfg.instance_noise = 0.5
    torch.manual_seed(0)
    noisy = rec.d_view(x, 0)
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.1)
    half = rec.d_view(x, rec.cfg.steps // 2)
    assert (half - x).std().item() == pytest.approx(0.25, rel=0.1)
    assert torch.equal(rec.d_view(x, rec.cfg.steps), x)        # annealed to 0 at the end
    rec.cfg.instance_noise, rec.cfg.diff_augment = 0.0, "translation"
    torch.manual_seed(0)
    moved = rec.d_view(x, 0)
    assert moved.shape == x.shape and not torch.equal(moved, x)
    # the D and G losses go through it: the same seed gives other losses with the policy on
    nets = rec.build()
    torch.manual_seed(1)
    on = rec.d_loss(nets, ctx_for(data)), rec.g_loss(nets, ctx_for(data))
    rec.cfg.diff_augment = ""
    torch.manual_seed(1)
    off = rec.d_loss(nets, ctx_for(data)), rec.g_loss(nets, ctx_for(data))
    assert not torch.equal(on[0]["loss"], off[0]["loss"]) and not torch.equal(on[1]["loss"], off[1]["loss"])


def test_config_rejects_bad_values():
    with pytest.raises(GanforgeError, match="diff_augment|DiffAugment"):
        make_config("text2image", overrides={"diff_augment": "colour"})
    with pytest.raises(GanforgeError, match="instance_noise"):
        make_config("text2image", overrides={"instance_noise": -1})
    with pytest.raises(GanforgeError, match="text_encoder"):
        make_config("text2image", overrides={"text_encoder": "lstm"})
    with pytest.raises(GanforgeError, match="beta"):
        make_config("text2image", overrides={"beta": 1.5})
    with pytest.raises(GanforgeError, match="wrong_text"):
        make_config("text2image", overrides={"wrong_text": "random"})


def test_needs_captioned_data(tmp_path):
    with pytest.raises(GanforgeError, match="shapes:captions"):
        ganforge.train("text2image", data="shapes", resolution=8, progress=False, steps=1, out=tmp_path / "r")


# -- data ----------------------------------------------------------------------------------------------------
def test_captions_describe_their_image_and_share_one_vocabulary():
    train, info = resolve("shapes:captions:20", resolution=16)
    test, info_test = resolve("shapes:captions:20", split="test", resolution=16)
    assert info.extra["vocab"] == info_test.extra["vocab"] == caption_vocabulary().itos
    assert train.x.shape == (20, 3, 16, 16) and info.num_classes == 0
    for caps, attr in zip(train.captions, train.attrs):
        for text in caps:
            assert all(attr[k] == v for k, v in parse_attributes(text).items())
    assert (train.tokens != 1).all()   # no <unk>: the vocabulary covers every template word
    batch = train.batch(torch.arange(4))
    assert batch["text"].shape == (4, info.extra["max_len"]) and batch["real"].min() >= -1
    with pytest.raises(GanforgeError, match="positive count"):
        resolve("shapes:captions:x")


def test_encode_text_and_sample_from_text(tmp_path):
    rec, _ = recipe_for()
    ids = rec.encode_text(["a red circle", "A RED circle!"])
    assert torch.equal(ids[0], ids[1]) and ids.shape == (2, 20)
    with pytest.raises(GanforgeError, match="vocabulary"):
        rec.encode_text(["zebra giraffe"])
    ganforge.train("text2image", out=tmp_path / "r", progress=False, **SMALL, **TINY)
    g = ganforge.load(tmp_path / "r")
    red = g.sample(3, seed=0, labels="a large red square on a blue background")
    assert red.shape == (3, 3, 8, 8)
    other = g.sample(3, seed=0, labels="a small green triangle on a white background")
    assert not torch.equal(red, other)
    assert torch.equal(g.sample(8, seed=1), g.recipe.generate(g.G, g.recipe.noise(8, "cpu", torch.Generator().manual_seed(1)),
                                                              encode_captions([SAMPLE_CAPTIONS[i] for i in range(8)],
                                                                              g.info.extra["vocab"])))
    assert (tmp_path / "r" / "plots" / "sample_captions.txt").read_text().startswith("0: " + SAMPLE_CAPTIONS[0])


def test_resume_is_bit_identical(tmp_path):
    ganforge.train("text2image", out=tmp_path / "a", progress=False, **SMALL, **TINY)
    ganforge.train("text2image", out=tmp_path / "b", progress=False, stop_at=2, **SMALL, **TINY)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mode_seeking_term_and_its_place_in_g_loss():
    from ganforge.recipes.text2image import mode_seeking_term

    x1, x2 = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    z1, z2 = torch.zeros(2, 8), torch.full((2, 8), 2.0)
    assert math.isclose(mode_seeking_term(x1, x2, z1, z2).item(), 1 / (0.25 + 1e-5), rel_tol=1e-6)
    assert mode_seeking_term(x1, x1, z1, z2).item() == 1e5          # one image for both noises: the largest
    rec, data = recipe_for(interpolate=False)
    nets = rec.build()
    torch.manual_seed(0)
    plain = rec.g_loss(nets, ctx_for(data))
    rec.cfg.mode_seeking = 2.0
    torch.manual_seed(0)
    ms = rec.g_loss(nets, ctx_for(data))
    # the same first fake (same noise draw), plus lambda x the term on a second draw of the same captions
    assert "mode_seeking" not in plain and ms["mode_seeking"].item() > 0
    assert math.isclose(ms["loss"].item(), plain["loss"].item() + 2.0 * ms["mode_seeking"].item(), rel_tol=1e-5)
    with pytest.raises(GanforgeError, match="mode_seeking"):
        make_config("text2image", overrides={"mode_seeking": -1})


# -- text pretraining ----------------------------------------------------------------------------------------
def test_joint_embedding_loss_is_the_symmetric_contrastive_cross_entropy():
    from ganforge.recipes.text2image import TEMPERATURE, JointEmbedding

    class Const(torch.nn.Module):
        def __init__(self, t):
            super().__init__()
            self.t = t

        def forward(self, _):
            return self.t

    n = 4
    e = JointEmbedding(TextEncoder(10, 4, 4), 4, 8, 3, 8)
    e.text = Const(torch.eye(n) * 3.0)                           # orthogonal, each aligned with its own image
    e.image = Const(torch.eye(n))
    loss, acc = e.loss(torch.zeros(n, 3, 8, 8), torch.zeros(n, 2, dtype=torch.long))
    own = 1 / TEMPERATURE                                        # cosine 1 with its caption, 0 with the others
    assert math.isclose(loss.item(), math.log1p((n - 1) * math.exp(-own)), abs_tol=1e-6)   # float32 logits
    assert acc.item() == 1.0
    e.image = Const(torch.eye(n).roll(1, 0))                     # every image nearest another's caption
    loss, acc = e.loss(torch.zeros(n, 3, 8, 8), torch.zeros(n, 2, dtype=torch.long))
    assert acc.item() == 0.0 and loss.item() > math.log(n)


def test_text_pretrain_trains_e_first_then_g_and_d_keep_its_encoder(tmp_path):
    rec, _ = recipe_for(text_pretrain=2, steps=4)
    assert [p.name for p in rec.phases(0)] == [p.name for p in rec.phases(1)] == ["E"]
    assert [p.name for p in rec.phases(2)] == ["D", "G"]
    assert rec.players["E"] == ("E",) and "E" not in recipe_for()[0].players
    with pytest.raises(GanforgeError, match="text_pretrain"):
        make_config("text2image", overrides={"text_pretrain": 4, "steps": 4})
    with pytest.raises(GanforgeError, match="text_pretrain_lr"):
        make_config("text2image", overrides={"text_pretrain": 1, "text_pretrain_lr": 0})
    ganforge.train("text2image", out=tmp_path / "a", progress=False, **SMALL,
                   **{**TINY, "ema_decay": 0.9}, text_pretrain=2)
    w = checkpoint.read(checkpoint.latest(tmp_path / "a"), with_state=False)[0]
    e_text = {k[len("E.text."):]: v for k, v in w.items() if k.startswith("E.text.")}
    assert e_text
    for net in ("G", "D"):       # taken at step 2 and not trained after
        assert all(torch.equal(w[f"{net}.text.{k}"], v) for k, v in e_text.items())
    # without it G's encoder is its own, trained with G
    ganforge.train("text2image", out=tmp_path / "b", progress=False, **SMALL, **TINY)
    plain = checkpoint.read(checkpoint.latest(tmp_path / "b"), with_state=False)[0]
    assert not any(k.startswith("E.") for k in plain)


def test_resume_across_the_end_of_text_pretraining_is_bit_identical(tmp_path):
    kw = {**SMALL, **TINY, "text_pretrain": 2}
    ganforge.train("text2image", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("text2image", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the attribute classifier --------------------------------------------------------------------------------
def test_attribute_classifier_reads_real_shapes_and_scores_only_mentioned_attributes():
    model = load_attribute_classifier()
    assert min(report()["test_accuracy"].values()) > 0.9
    data, _ = resolve("shapes:captions:64", split="test", resolution=32)
    x = data.x.float() / 127.5 - 1
    wanted = [{k: a[k] for k in ("kind", "color", "background", "size", "position")} for a in data.attrs]
    acc = attribute_accuracy(model, x, wanted)
    assert acc["color"] > 0.9 and acc["background"] > 0.9 and acc["mean"] > 0.9
    # asking for the wrong colour: accuracy on colour collapses; unmentioned attributes are not scored
    swap = [{"color": "red" if a["color"] != "red" else "blue"} for a in data.attrs]
    wrong = attribute_accuracy(model, x, swap)
    assert set(wrong) == {"color", "mean", "all"} and wrong["color"] < 0.2
    # 16x16 images (upsampled inside) still read
    small = F.interpolate(x, size=(16, 16), mode="area")
    assert attribute_accuracy(model, small, wanted)["color"] > 0.9
    with pytest.raises(GanforgeError, match="one request per image"):
        attribute_accuracy(model, x, wanted[:3])


def test_architecture_options_size_the_nets():
    nets = recipe_for(text_encoder="bag", embed_dim=5, text_dim=7, proj_dim=3, g_width=4, d_width=6)[0].build()
    G, D = nets["G"], nets["D"]
    assert G.text.kind == "bag" and G.text.embed.embedding_dim == 5 and G.text.out.out_features == 7
    assert G.proj[0].out_features == 3 and D.proj[0].out_features == 3
    assert D.body[0].out_channels == 6 and G.backbone.net[-2].in_channels == 4
