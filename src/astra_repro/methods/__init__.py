"""The method registry. Adding a method: one module here (a `Method` subclass with `@register_method`, its YAML
keys declared once in `options`, checked when the run spec is built) plus `configs/method/<name>.yaml`, and its
module name in `_MODULES` below."""

import importlib

from astra_repro.methods.base import METHODS, InitContext, HyperParams, Method, register_method

_MODULES = ["lora", "fft", "astra", "pissa", "milora", "corda", "loraga", "eva", "olora", "loraplus"]

for _module in _MODULES:
    try:
        importlib.import_module(f"astra_repro.methods.{_module}")
    except ModuleNotFoundError as err:  # a method under construction must not break the others
        if err.name != f"astra_repro.methods.{_module}":
            raise


def get_method(name: str) -> Method:
    return METHODS.get(name)()


def describe_methods() -> str:
    width = max(len(n) for n in METHODS.names())
    return "\n".join(f"  {name:<{width}}  {cls.description}" for name, cls in METHODS)


__all__ = ["METHODS", "InitContext", "HyperParams", "Method", "register_method", "get_method", "describe_methods"]
