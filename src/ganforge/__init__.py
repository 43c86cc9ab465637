"""ganforge: generative adversarial networks, one training loop, trustworthy metrics.

The public API below is imported on first use (PEP 562 module __getattr__): `import ganforge` itself loads no
torch, so the CLI's help and argument errors, and a script that only reads `ganforge.__version__`, start at
once; `ganforge.train` and the rest import what they need when first touched (docs/performance.md, start-up).
"""
__version__ = "0.1.0"

from .errors import GanforgeError  # noqa: E402

# public name -> module that defines it (the one place that says where each public name lives)
_API = {
    "train": "api", "resume": "api", "list_recipes": "api", "register": "api",
    "load": "runs", "Generator": "runs",
    "evaluate": "metrics.evaluate",
    "Recipe": "recipes.base", "RecipeConfig": "recipes.base", "Phase": "recipes.base", "StepContext": "recipes.base",
    "RECIPES": "registry", "DATASETS": "registry",
    "sample": "commands.sample", "export": "commands.export", "interpolate": "commands.interpolate",
    "style_mix": "commands.style_mix", "translate": "commands.translate", "upscale": "commands.upscale",
    "invert": "commands.invert", "serve": "commands.serve",
}

__all__ = ["GanforgeError", "__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:       # AttributeError lets `from ganforge import losses` fall back to the submodule
        raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later reads are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
