"""The training loop, EMA, checkpoints and the run directory's logs."""
