"""Building blocks only: layers that know nothing of losses, training or global state."""
