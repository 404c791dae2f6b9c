"""Names of Astra's eigenvector selections (Table 4's rows), kept apart from the method so that the tables can name
a run's selection without importing the training stack.

Two conventions (protocol §5, docs/astra_fidelity.md D1): "paper" is the authors' reading, tail := the largest
eigenvalues (ascending `eigh` columns read as descending); "math" is the paper's own definition, tail := the
smallest eigenvalues (Theorem 2.2)."""

from __future__ import annotations

DEFAULT_WINDOW_START = "d/2"  # astra's `window_start` when a window run does not set it

SELECTION_LABELS = {
    "paper": {
        "largest": "Tail", "smallest": "Top", "random": "Random",
        "0": "Top", "d/4": "Upper Quartile (Q3)", "d/2": "Medium", "3d/4": "Lower Quartile (Q1)", "d-r": "Tail",
    },
    "math": {
        "largest": "Top", "smallest": "Tail", "random": "Random",
        "0": "Tail", "d/4": "Lower Quartile (Q1)", "d/2": "Medium", "3d/4": "Upper Quartile (Q3)", "d-r": "Top",
    },
}


def selection_label(subspace: str, window_start=None, convention: str = "paper") -> str:
    """The Table 4 row name of a selection: `subspace` largest / smallest / random, or window at `window_start`
    (a named window such as "d/4", or an integer column index)."""
    labels = SELECTION_LABELS[convention]
    if subspace != "window":
        return labels[subspace]
    if isinstance(window_start, int) and not isinstance(window_start, bool):
        return f"Window@{window_start}"
    return labels[str(window_start)]
