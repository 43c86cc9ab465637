"""Metrics: pure math over features (stats) and the FID Inception-v3 extractor (inception).

See stats.py and inception.py for the papers and equations. The digits evaluator lives in its own
module (metrics.digits) and is imported where it is used.
"""
from .inception import DEFAULT_URL, InceptionFID, extract, load_inception, preprocess, weights_sha256
from .stats import (density_coverage, feature_stats, fid, fid_from_stats, inception_score, kid,
                    mode_coverage, precision_recall)

__all__ = [
    "DEFAULT_URL", "InceptionFID", "extract", "load_inception", "preprocess", "weights_sha256",
    "density_coverage", "feature_stats", "fid", "fid_from_stats", "inception_score", "kid",
    "mode_coverage", "precision_recall",
]
