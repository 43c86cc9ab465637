"""ganforge: generative adversarial networks, one training loop, trustworthy metrics."""
__version__ = "0.1.0"

from .errors import GanforgeError  # noqa: E402
from .recipes.base import Phase, Recipe, RecipeConfig, StepContext  # noqa: E402
from .registry import RECIPES, DATASETS  # noqa: E402
from .api import train, resume, load, list_recipes, register  # noqa: E402
from .metrics.evaluate import evaluate  # noqa: E402

__all__ = ["train", "resume", "load", "evaluate", "list_recipes", "register", "Recipe", "RecipeConfig", "Phase",
           "StepContext", "GanforgeError", "RECIPES", "DATASETS", "__version__"]
