import pytest
import torch

# one thread: the suite's nets are tiny, and two OpenMP threads on a shared 2-core machine spin-wait badly
torch.set_num_threads(1)


@pytest.fixture
def tiny():
    """Overrides that make any recipe train in well under a second per step on CPU."""
    return {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1,
            "num_samples": 16}
