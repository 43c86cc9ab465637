"""Closed-form and hand-made checks of the pure metric math (ganforge.metrics.stats)."""
import math

import numpy as np
import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.metrics import stats
from ganforge.metrics import (density_coverage, feature_stats, fid, fid_from_stats, inception_score, kid,
                              mode_coverage, precision_recall)


def gaussian(n, d, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


# ---------------------------------------------------------------- FID

def test_fid_of_identical_stats_is_zero():
    mu, sigma = feature_stats(gaussian(500, 16))
    assert abs(fid_from_stats(mu, sigma, mu, sigma)) < 1e-6


def test_fid_two_diagonal_gaussians_match_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    d1, d2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = ((mu1 - mu2) ** 2).sum() + (d1 + d2 - 2 * np.sqrt(d1 * d2)).sum()
    got = fid_from_stats(mu1, np.diag(d1), mu2, np.diag(d2))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_full_covariances_match_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    a, b = gaussian(300, 12, seed=2), gaussian(300, 12, seed=3) @ np.diag(np.linspace(0.5, 2, 12))
    (mu1, s1), (mu2, s2) = feature_stats(a), feature_stats(b)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_fid_near_singular_covariance_is_finite_and_real():
    # 10 samples in 64-d: both covariances have rank 9
    value = fid(gaussian(10, 64, seed=4), gaussian(10, 64, shift=0.5, seed=5))
    assert isinstance(value, float) and math.isfinite(value) and value > 0


def test_fid_falls_back_to_eps_identity_when_the_square_root_fails(monkeypatch):
    from ganforge.metrics import stats
    real, calls = stats._trace_sqrt_product, []

    def flaky(s1, s2):
        calls.append(s1[0, 0])
        if len(calls) == 1:
            raise np.linalg.LinAlgError("did not converge")
        return real(s1, s2)

    monkeypatch.setattr(stats, "_trace_sqrt_product", flaky)
    d1, d2 = np.array([1.0, 2.0, 0.5]), np.array([0.5, 2.0, 4.0])
    got = fid_from_stats(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2), eps=1e-6)
    assert calls == [1.0, 1.0 + 1e-6]  # the retry saw sigma + eps * I
    assert got == pytest.approx(3 + (d1 + d2 - 2 * np.sqrt(d1 * d2)).sum(), abs=1e-5)


def test_fid_accepts_torch_and_matches_numpy():
    a, b = gaussian(200, 8, seed=6), gaussian(200, 8, shift=1.0, seed=7)
    assert fid(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(fid(a, b), rel=1e-5)
    assert fid(a, b) > 7  # a shift of 1 in each of 8 dims contributes ||mu1 - mu2||^2 ~ 8


def test_fid_rejects_mismatched_or_nan_inputs():
    mu, sigma = feature_stats(gaussian(50, 4))
    with pytest.raises(GanforgeError, match="shape"):
        fid_from_stats(mu, sigma, mu[:3], sigma[:3, :3])
    with pytest.raises(GanforgeError, match="NaN"):
        fid_from_stats(mu * np.nan, sigma, mu, sigma)
    with pytest.raises(GanforgeError, match="at least 2"):
        feature_stats(gaussian(1, 4))


# ---------------------------------------------------------------- KID

def test_kid_near_zero_for_same_distribution_and_larger_when_shifted():
    x, y, z = gaussian(400, 32, seed=8), gaussian(400, 32, seed=9), gaussian(400, 32, shift=1.0, seed=10)
    same, _ = kid(x, y, subsets=20, subset_size=200)
    shifted, std = kid(x, z, subsets=20, subset_size=200)
    assert abs(same) < 0.02
    assert shifted > 0.5 and shifted > 20 * abs(same) and std >= 0


def test_kid_is_unbiased_so_it_averages_to_zero_and_goes_negative():
    values, biased = [], []
    for s in range(40):
        x, y = gaussian(20, 4, seed=2 * s), gaussian(20, 4, seed=2 * s + 1)
        values.append(kid(x, y, subsets=1, seed=s)[0])
        k = lambda a, b: (a @ b.T / 4 + 1) ** 3  # noqa: E731 - the biased V-statistic, for contrast
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    values = np.array(values)
    assert (values < 0).any()
    assert abs(values.mean()) < 3 * values.std() / math.sqrt(len(values))
    # the test has power: the biased estimator on the same draws is clearly positive
    assert np.mean(biased) > 3 * np.std(biased) / math.sqrt(len(biased))


def test_kid_clips_subset_size_and_seed_changes_subsets():
    x, y = gaussian(30, 4, seed=11), gaussian(50, 4, seed=12)
    mean, std = kid(x, y, subsets=5, subset_size=1000)
    assert math.isfinite(mean)
    assert kid(x, y, subsets=3, subset_size=10, seed=0) != kid(x, y, subsets=3, subset_size=10, seed=1)
    with pytest.raises(GanforgeError, match="feature sizes"):
        kid(x, gaussian(30, 5))


# ---------------------------------------------------------------- Inception Score

def test_inception_score_is_one_for_uniform_predictions():
    mean, std = inception_score(np.full((100, 10), 0.1), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_is_k_for_confident_predictions_spread_evenly():
    k = 7
    labels = np.tile(np.arange(k), 20)  # every contiguous split of 14 rows holds each class twice
    mean, std = inception_score(np.eye(k)[labels], splits=10)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)
    logits_mean, _ = inception_score(torch.from_numpy(np.eye(k)[labels] * 60.0), splits=10)
    assert logits_mean == pytest.approx(k, rel=1e-6)


def test_inception_score_from_logits_flag_changes_interpretation():
    p = np.random.default_rng(13).dirichlet(np.full(5, 0.3), size=60)
    auto, _ = inception_score(p, splits=3)
    as_probs, _ = inception_score(p, splits=3, from_logits=False)
    as_logits, _ = inception_score(p, splits=3, from_logits=True)
    assert auto == as_probs and as_logits != pytest.approx(as_probs)
    assert 1.0 <= as_logits <= as_probs <= 5.0
    with pytest.raises(GanforgeError, match="splits"):
        inception_score(p, splits=61)


# ---------------------------------------------------------------- precision / recall / density / coverage

LINE = np.arange(5.0)[:, None]  # reals at 0..4: with k=1 every real ball has radius 1
FAKES = np.array([[0.5], [10.0]])


def test_precision_recall_hand_made():
    # fake 0.5 lies in the balls of reals 0 and 1, fake 10 in none; the fake balls have radius 9.5
    assert precision_recall(LINE, FAKES, k=1) == {"precision": 0.5, "recall": 1.0}


def test_density_coverage_hand_made():
    # density = 2 ball memberships / (k=1 * 2 fakes); reals 0 and 1 have a fake within radius 1
    assert density_coverage(LINE, FAKES, k=1) == {"density": 1.0, "coverage": 0.4}


def test_precision_recall_coverage_identical_and_far_sets():
    real = gaussian(300, 16, seed=14)
    assert precision_recall(real, real, k=3) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(real, real, k=3)["coverage"] == 1.0
    far = gaussian(300, 16, shift=50.0, seed=15)
    assert precision_recall(real, far, k=3) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(real, far, k=3) == {"density": 0.0, "coverage": 0.0}


def test_same_distribution_scores_high_and_batching_does_not_change_results():
    real, fake = gaussian(600, 8, seed=16), torch.from_numpy(gaussian(500, 8, seed=17))
    pr, dc = precision_recall(real, fake, k=5), density_coverage(real, fake, k=5)
    assert pr["precision"] > 0.8 and pr["recall"] > 0.8 and 0.7 < dc["density"] < 1.3 and dc["coverage"] > 0.9
    assert precision_recall(real, fake, k=5, batch=37) == pr
    assert density_coverage(real, fake, k=5, batch=37) == dc


def test_knn_needs_more_samples_than_k():
    with pytest.raises(GanforgeError, match="k="):
        precision_recall(LINE, FAKES, k=3)  # only 2 fakes


# ---------------------------------------------------------------- mode coverage (PacGAN)

RING = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
STD = 0.01


def ring_points():
    return np.array([
        RING[0], RING[0] + [0.01, 0], RING[0] + [0, -0.02],  # mode 0: 0, 1 and 2 std away
        RING[1] + [0.0, 0.025],                              # mode 1: 2.5 std
        RING[2] - [0.02, 0.0],                               # mode 2: 2 std
        RING[3] + [0.05, 0.0],                               # 5 std from mode 3: low quality
        [0.0, 0.0],                                          # the centre: low quality
    ])


def test_mode_coverage_hand_made_counts():
    out = mode_coverage(ring_points(), RING, STD)
    assert out["modes"] == 3
    assert out["histogram"] == [3, 1, 1, 0, 0, 0, 0, 0]
    assert out["high_quality"] == pytest.approx(5 / 7)
    q = np.array([3, 1, 1]) / 5
    assert out["reverse_kl"] == pytest.approx(float((q * np.log(8 * q)).sum()), rel=1e-12)


def test_mode_coverage_threshold_changes_what_counts():
    out = mode_coverage(torch.from_numpy(ring_points()), torch.from_numpy(RING), STD, threshold=6.0)
    assert out["histogram"] == [3, 1, 1, 1, 0, 0, 0, 0] and out["modes"] == 4
    assert out["high_quality"] == pytest.approx(6 / 7)


def test_mode_coverage_reverse_kl_bounds():
    even = np.repeat(RING, 3, axis=0)
    assert mode_coverage(even, RING, STD)["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    collapsed = mode_coverage(np.repeat(RING[:1], 10, axis=0), RING, STD)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(math.log(8))
    none = mode_coverage(np.zeros((4, 2)), RING, STD)
    assert none["modes"] == 0 and none["high_quality"] == 0.0 and none["reverse_kl"] == math.inf


def test_duplicated_samples_follow_each_reference_ties_rule():
    """A collapsed generator (every fake a copy of a real) on integer features: distances tie exactly.
    Density / coverage use prdc's open balls (d < r); precision / recall Kynkaanniemi et al.'s closed ones."""
    g = np.random.default_rng(0)
    real = g.integers(0, 3, size=(60, 4)).astype(float)      # many exact duplicates among the reals
    fake = np.repeat(real[:5], 12, axis=0)                    # 5 real images, copied 12 times each
    dc = stats.density_coverage(real, fake, k=3)
    pr = stats.precision_recall(real, fake, k=3)
    sq = ((real[:, None] - real[None]) ** 2).sum(-1)
    radii = np.sort(sq, axis=1)[:, 3]
    d = ((real[:, None] - fake[None]) ** 2).sum(-1)
    assert dc["density"] == pytest.approx((d < radii[:, None]).sum() / (3 * len(fake)))
    assert dc["coverage"] == pytest.approx((d.min(axis=1) < radii).mean())
    assert (d <= radii[:, None]).sum() > (d < radii[:, None]).sum()          # the tie rule matters here
    assert pr["precision"] == pytest.approx((d <= radii[:, None]).any(axis=0).mean())
    # continuous features duplicated: the exact-zero distances survive the |a|^2 + |b|^2 - 2ab expansion
    cont = g.standard_normal((40, 8)) * 100
    dup = np.concatenate([cont, cont[:10]])
    assert (stats._sq_dists(dup[-10:], dup[:10]).diagonal() == 0).all()


def test_inception_score_splits_like_the_original_code():
    g = np.random.default_rng(1)
    logits = g.standard_normal((25, 7)) * 3                  # 25 is not divisible by 10
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for i in range(10):                                      # improved-gan's inception_score.py rule
        part = p[i * 25 // 10:(i + 1) * 25 // 10]
        scores.append(np.exp((part * (np.log(part) - np.log(part.mean(0)))).sum(1).mean()))
    got = stats.inception_score(logits, splits=10, from_logits=True)
    assert got[0] == pytest.approx(np.mean(scores), rel=1e-12) and got[1] == pytest.approx(np.std(scores), rel=1e-12)
    other = np.mean([np.exp((q * (np.log(q) - np.log(q.mean(0)))).sum(1).mean()) for q in np.array_split(p, 10)])
    assert abs(other - got[0]) > 1e-6                        # np.array_split's chunks give another number


def test_kid_sampler_changes_the_subsets():
    g = np.random.default_rng(2)
    x, y = g.standard_normal((50, 3)), g.standard_normal((50, 3)) + 0.2
    a = stats.kid(x, y, subsets=5, subset_size=20, seed=0)
    b = stats.kid(x, y, subsets=5, subset_size=20, seed=0, sampler="RandomState")
    assert a != b and b == stats.kid(x, y, subsets=5, subset_size=20, seed=0, sampler="RandomState")
    with pytest.raises(GanforgeError, match="sampler"):
        stats.kid(x, y, sampler="python")


def test_pairwise_distance_is_the_mean_rms_distance_over_pairs():
    from ganforge.metrics.attributes import pairwise_distance

    a, b, c = torch.zeros(3, 2, 2), torch.ones(3, 2, 2), torch.full((3, 2, 2), -1.0)
    assert pairwise_distance(torch.stack([a, a, a])) == 0.0           # one image drawn three times
    # pairs (a, b): 1, (a, c): 1, (b, c): 2 -> mean 4 / 3
    assert abs(pairwise_distance(torch.stack([a, b, c])) - 4 / 3) < 1e-6
    with pytest.raises(GanforgeError, match="at least 2"):
        pairwise_distance(a[None])
