"""Pure metric math over feature arrays (numpy or torch in, Python floats out).

- FID, Heusel et al. 2017 (arXiv:1706.08500), eq. 6:
  d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
- KID, Binkowski et al. 2018 (arXiv:1801.01401), eq. 3: unbiased MMD^2 with the cubic polynomial
  kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
- Inception Score, Salimans et al. 2016 (arXiv:1606.03498), sec. 4: exp(E_x KL(p(y|x) || p(y))).
- Precision / recall, Kynkaanniemi et al. 2019 (arXiv:1904.06991), eq. 1-2: k-NN balls as manifolds.
- Density / coverage, Naeem et al. 2020 (arXiv:2002.09797), eq. 3-4.
- Mode coverage on 2-D mixtures, the PacGAN protocol, Lin et al. 2018 (arXiv:1712.04086), sec. 5.1.

All computation is float64 numpy; every function returns Python floats (or ints / lists).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import GanforgeError


def _array(x, name: str, ndim: int | None = 2) -> np.ndarray:
    """numpy float64 view of a numpy array or torch tensor; rejects NaN/inf with a clear message."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if ndim is not None and a.ndim != ndim:
        raise GanforgeError(f"{name} must be a {ndim}-D array, got shape {tuple(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise GanforgeError(f"{name} contains NaN or inf values; check the model producing them")
    return a


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (ddof=1) covariance of N x d features, as pytorch-fid computes them."""
    f = _array(feats, "features")
    if f.shape[0] < 2:
        raise GanforgeError(f"feature statistics need at least 2 samples, got {f.shape[0]}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; tiny negative eigenvalues are round-off."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # tr (S1 S2)^(1/2) = sum sqrt(eig(S1 S2)) and S1 S2 is similar to the symmetric PSD matrix
    # S1^(1/2) S2 S1^(1/2): using eigvalsh on that form never yields complex parts (scipy's sqrtm does)
    r = _psd_sqrt(sigma1)
    m = r @ sigma2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def fid_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, eq. 6).

    If the eigen-decomposition fails or is not finite, eps * I is added to both covariances and it is
    retried, as pytorch-fid does for near-singular products.
    """
    mu1, mu2 = _array(mu1, "mu1", 1), _array(mu2, "mu2", 1)
    sigma1, sigma2 = _array(sigma1, "sigma1"), _array(sigma2, "sigma2")
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise GanforgeError(f"FID statistics disagree in shape: mu1 {mu1.shape}, mu2 {mu2.shape}, "
                            f"sigma1 {sigma1.shape}, sigma2 {sigma2.shape}; use the same feature extractor")
    try:
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    except np.linalg.LinAlgError:
        tr_covmean = math.nan
    if not math.isfinite(tr_covmean):
        offset = np.eye(d) * eps
        tr_covmean = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid(feats1, feats2) -> float:
    """FID between two N x d feature sets (the sample counts should match: FID is biased by N)."""
    return fid_from_stats(*feature_stats(feats1), *feature_stats(feats2))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


KID_SAMPLERS = ("default_rng", "RandomState")


def kid(feats1, feats2, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        sampler: str = "default_rng") -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) over `subsets` random subsets of the unbiased MMD^2.

    Per subset of m samples from each set (m = min(subset_size, N1, N2)):
    MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2.
    Being unbiased it can be negative when the two sets come from the same distribution.
    sampler: how subsets are drawn: "default_rng" (numpy's Generator seeded `seed`) or "RandomState"
    (np.random.RandomState(seed).choice, first from feats1 then feats2, as torch-fidelity's KID draws them).
    """
    if sampler not in KID_SAMPLERS:
        raise GanforgeError(f"KID sampler must be one of {', '.join(KID_SAMPLERS)}, got {sampler!r}")
    x_all, y_all = _array(feats1, "feats1"), _array(feats2, "feats2")
    if x_all.shape[1] != y_all.shape[1]:
        raise GanforgeError(f"KID feature sizes differ: {x_all.shape[1]} vs {y_all.shape[1]}")
    m = min(subset_size, x_all.shape[0], y_all.shape[0])
    if m < 2 or subsets < 1:
        raise GanforgeError(f"KID needs at least 2 samples per set and 1 subset, got m={m}, subsets={subsets}")
    rng = np.random.default_rng(seed) if sampler == "default_rng" else np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        # off-diagonal sums: the i == j terms make the estimator biased
        same = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(same - 2 * k_xy.sum() / (m * m))
    return float(np.mean(values)), float(np.std(values))


def inception_score(probs_or_logits, splits: int = 10, from_logits: bool | None = None) -> tuple[float, float]:
    """Inception Score (mean, std over `splits` chunks): exp(E_x KL(p(y|x) || p(y))), natural log.

    Rows are class probabilities p(y|x) or logits. from_logits=None decides by the data: rows that are
    non-negative and sum to 1 are probabilities, anything else is softmaxed.
    Bounds: 1 (all rows equal) <= IS <= number of classes.
    Split i is rows [i N // splits, (i + 1) N // splits), the rule of the original code (Salimans et al.'s
    improved-gan inception_score.py, torch-fidelity's isc); np.array_split puts the remainder elsewhere and
    gave 85.5830 instead of 85.5891 on a set with N not divisible by 10.
    """
    a = _array(probs_or_logits, "predictions")
    if from_logits is None:
        from_logits = not (a.min() >= 0 and np.allclose(a.sum(axis=1), 1.0, atol=1e-4))
    if from_logits:
        a = np.exp(a - a.max(axis=1, keepdims=True))
    p = a / a.sum(axis=1, keepdims=True)
    if not 1 <= splits <= p.shape[0]:
        raise GanforgeError(f"inception_score splits must be in [1, {p.shape[0]}] (number of samples), got {splits}")
    scores = []
    n = p.shape[0]
    for part in (p[i * n // splits:(i + 1) * n // splits] for i in range(splits)):
        py = part.mean(axis=0, keepdims=True)
        # 0 log 0 = 0: where p(y|x) = 0 the term vanishes (and then p(y) may be 0 too)
        log_ratio = np.log(np.where(part > 0, part, 1.0)) - np.log(np.where(part > 0, py, 1.0))
        scores.append(math.exp((part * log_ratio).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances; pairs the expansion leaves within round-off of 0 are recomputed exactly,
    so duplicated samples (a collapsed generator, copied training images) are at distance exactly 0 and the
    strict / non-strict comparisons below see the ties the reference code sees."""
    na, nb = (a * a).sum(1), (b * b).sum(1)
    d = np.clip(na[:, None] + nb[None, :] - 2 * a @ b.T, 0, None)
    i, j = np.nonzero(d <= 1e-9 * (na[:, None] + nb[None, :]))
    if i.size:
        d[i, j] = ((a[i] - b[j]) ** 2).sum(1)
    return d


def _knn_sq_radii(x: np.ndarray, k: int, batch: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (self, at distance 0, is skipped)."""
    if not 1 <= k < x.shape[0]:
        raise GanforgeError(f"k-NN radii need 1 <= k < number of samples ({x.shape[0]}), got k={k}")
    out = np.empty(x.shape[0])
    for s in range(0, x.shape[0], batch):
        d = _sq_dists(x[s:s + batch], x)
        out[s:s + batch] = np.partition(d, k, axis=1)[:, k]
    return out


def _pair(real_feats, fake_feats) -> tuple[np.ndarray, np.ndarray]:
    real, fake = _array(real_feats, "real_feats"), _array(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise GanforgeError(f"real and fake feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")
    return real, fake


def _fraction_inside(points: np.ndarray, centers: np.ndarray, sq_radii: np.ndarray, batch: int) -> float:
    """Fraction of `points` inside at least one closed ball (center_i, radius_i): d <= r, as Kynkaanniemi et
    al.'s reference code (NVlabs precision-recall, and torch-fidelity's prc) compares."""
    inside = 0
    for s in range(0, points.shape[0], batch):
        inside += int((_sq_dists(points[s:s + batch], centers) <= sq_radii[None, :]).any(axis=1).sum())
    return inside / points.shape[0]


def precision_recall(real_feats, fake_feats, k: int = 3, batch: int = 1024) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, eq. 1-2).

    precision = share of fakes inside the union of real k-NN balls; recall = share of reals inside the
    union of fake k-NN balls. Distances are computed `batch` rows at a time (10k x 10k fits in memory).
    """
    real, fake = _pair(real_feats, fake_feats)
    precision = _fraction_inside(fake, real, _knn_sq_radii(real, k, batch), batch)
    recall = _fraction_inside(real, fake, _knn_sq_radii(fake, k, batch), batch)
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real_feats, fake_feats, k: int = 3, batch: int = 1024) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020, eq. 3-4), real k-NN balls only.

    density = (1 / kM) sum_j #{i : fake_j in B(real_i, r_i)}  (can exceed 1);
    coverage = (1 / N) #{i : some fake in B(real_i, r_i)}.
    The balls are open (d < r), as in Naeem et al.'s reference code (clovaai/generative-evaluation-prdc):
    with `<=` duplicated features count every tie, which turned a density of 0.091 into 24.16.
    """
    real, fake = _pair(real_feats, fake_feats)
    sq_radii = _knn_sq_radii(real, k, batch)
    count = 0
    nearest_fake = np.empty(real.shape[0])
    for s in range(0, fake.shape[0], batch):
        count += int((_sq_dists(fake[s:s + batch], real) < sq_radii[None, :]).sum())
    for s in range(0, real.shape[0], batch):
        nearest_fake[s:s + batch] = _sq_dists(real[s:s + batch], fake).min(axis=1)
    return {"density": float(count / (k * fake.shape[0])),
            "coverage": float((nearest_fake < sq_radii).mean())}


def mode_coverage(points, means, std: float, threshold: float = 3.0) -> dict:
    """PacGAN's mode-collapse metrics on a Gaussian mixture (Lin et al. 2018, sec. 5.1, Table 1).

    A point is high quality (HQ) if ||x - nearest mean|| / std < threshold. The histogram counts HQ
    points per mode (in the order of `means`); a mode is captured if it has >= 1 HQ point.
    reverse_kl = KL(q || u) = sum_i q_i log(q_i * M) in nats, where q = histogram / (number of HQ
    points), u is uniform over the M modes and 0 log 0 = 0. It is 0 for a perfectly even histogram,
    log M when every HQ point sits in one mode, and inf when there is no HQ point at all.
    """
    x, mu = _array(points, "points"), _array(means, "means")
    if x.shape[1] != mu.shape[1]:
        raise GanforgeError(f"points have {x.shape[1]} dims but means have {mu.shape[1]}")
    if not std > 0:
        raise GanforgeError(f"mode_coverage std must be positive, got {std}")
    d = np.sqrt(_sq_dists(x, mu))
    nearest = d.argmin(axis=1)
    hq = d[np.arange(x.shape[0]), nearest] / std < threshold
    histogram = np.bincount(nearest[hq], minlength=mu.shape[0])
    n_hq = int(histogram.sum())
    if n_hq == 0:
        reverse_kl = math.inf
    else:
        q = histogram[histogram > 0] / n_hq
        reverse_kl = float((q * np.log(q * mu.shape[0])).sum())
    return {"modes": int((histogram > 0).sum()),
            "high_quality": float(n_hq / x.shape[0]) if x.shape[0] else 0.0,
            "reverse_kl": reverse_kl,
            "histogram": [int(c) for c in histogram]}
