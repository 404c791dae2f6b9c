"""Recipes: one config value per scale. A mapping whose keys are all recipe names is recipe-keyed and
resolves to the entry of the active recipe (the model config picks it: `model.recipe`)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from astra_repro.errors import ConfigError

RECIPES = ("demo", "paper", "glue")


def is_recipe_keyed(node: Any) -> bool:
    return isinstance(node, (DictConfig, dict)) and len(node) > 0 and all(k in RECIPES for k in node.keys())


def per_recipe(node: Any, recipe: str) -> Any:
    if not is_recipe_keyed(node):
        return node
    if recipe not in node:
        raise ConfigError(f"this setting has no value for recipe '{recipe}' (it has: {', '.join(node.keys())})")
    value = node[recipe]
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def resolve_recipe_tree(node: Any, recipe: str) -> Any:
    """Replace every recipe-keyed mapping ({demo: .., paper: ..}) in a nested plain structure by its active entry."""
    if is_recipe_keyed(node):
        return per_recipe(OmegaConf.create(node), recipe)
    if isinstance(node, dict):
        return {k: resolve_recipe_tree(v, recipe) for k, v in node.items()}
    return node
