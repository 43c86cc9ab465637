"""Metrics: pure math over features (stats), feature extractors (inception, digits, features) and the
evaluation protocol (evaluate: `ganforge.evaluate`, `ganforge eval`).

See stats.py, inception.py, digits.py and evaluate.py for the papers and equations. `evaluate` is
imported lazily (it loads runs and data specs, which the pure math does not need).
"""
from .inception import DEFAULT_URL, InceptionFID, extract, load_inception, preprocess, weights_sha256
from .stats import (density_coverage, feature_stats, fid, fid_from_stats, inception_score, kid,
                    mode_coverage, precision_recall)

__all__ = [
    "DEFAULT_URL", "InceptionFID", "extract", "load_inception", "preprocess", "weights_sha256",
    "density_coverage", "feature_stats", "fid", "fid_from_stats", "inception_score", "kid",
    "mode_coverage", "precision_recall", "evaluate", "evaluate_nets", "load_extractor",
]


def __getattr__(name):
    # lazy: `from ganforge.metrics import evaluate` without importing the data and run loaders up front
    if name == "evaluate":
        from .evaluate import evaluate
        return evaluate
    if name == "evaluate_nets":
        from .periodic import evaluate_nets
        return evaluate_nets
    if name == "load_extractor":
        from .features import load_extractor
        return load_extractor
    raise AttributeError(name)
