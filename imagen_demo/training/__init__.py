"""Training: data sources, one trainer per cascade stage, recipes, and assembly into a pipeline.

Exports load on first use (see imagen_demo.utils.lazy): the CLI imports the error below without torch.
"""

from ..utils.lazy import lazy_exports

_EXPORTS = {
    "Recipe": ".recipe", "StageRecipe": ".recipe", "load_recipe": ".recipe",
    "TrainingDivergedError": ".errors", "assemble": ".trainer", "train_stage": ".trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
