"""astra_repro: reproduce Astra (activation-space tail-eigenvector LoRA) and compare LoRA initialisations.

Stages, one module each, data flowing one way:
config -> data -> calibration -> methods (init) -> training -> export -> evaluators -> runs (record) -> tables
"""

__version__ = "0.1.0"
