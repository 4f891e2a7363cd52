"""Training: data sources, one trainer per cascade stage, recipes, and assembly into a pipeline."""

from .recipe import Recipe, StageRecipe, load_recipe
from .trainer import TrainingDivergedError, assemble, train_stage

__all__ = ["Recipe", "StageRecipe", "TrainingDivergedError", "assemble", "load_recipe", "train_stage"]
