"""One file per GAN family; importing this package registers them all."""
from . import gan, dcgan, cgan  # noqa: F401  (registration side effects)
