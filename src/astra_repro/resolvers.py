"""OmegaConf resolvers the configs use, registered when the package is imported (before any composition).

`${mul:2,${rank}}`: the scale files state alpha as a rule of the rank (alpha = 2r at the demo scale and on GLUE), so
`rank=8` on the command line keeps the scale's scaling s = alpha / r, and `alpha=16` still sets alpha outright."""

from __future__ import annotations

from omegaconf import OmegaConf


def _mul(a, b):
    return a * b


def register() -> None:
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", _mul)
