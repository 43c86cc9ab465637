"""Generator and discriminator architectures by backbone, sized by arguments (resolution, channels, width)."""
