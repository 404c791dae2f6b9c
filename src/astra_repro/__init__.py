"""astra_repro: reproduce Astra (activation-space tail-eigenvector LoRA) and compare LoRA initialisations.

Stages, one module each, data flowing one way:
config -> data -> calibration -> methods (init) -> training -> export -> evaluators -> runs (record) -> tables
"""

__version__ = "0.1.0"

# First, before any module of the package imports torch: OMP_WAIT_POLICY=PASSIVE (unless the environment sets it),
# read once when torch loads libgomp. `python -m astra_repro.<entry>` imports this package before the entry module.
from astra_repro import threads as _threads  # noqa: E402

_threads.configure_environment()

from astra_repro import resolvers as _resolvers  # noqa: E402  (${mul:...} in configs/scale/*.yaml)

_resolvers.register()
