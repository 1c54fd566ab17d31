"""sidrec: generative recommendation with Semantic IDs.

    import sidrec
    rec = sidrec.load("runs/beauty")                 # a trained run directory
    rec.recommend(["B004OHQR1Q", "B0009RF9DW"], k=10)  # -> [Recommendation(item_id, rank, score, title, sid)]
    sidrec.run("toy", out="runs/toy", train__epochs=1)  # the whole pipeline, like `sidrec run`

`import sidrec` stays cheap: the API module (and torch with it) loads on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidrec.api import Model, Recommendation, UnknownItemsError, load, run

__all__ = ["Model", "Recommendation", "UnknownItemsError", "__version__", "load", "run", "version_text"]


def version_text() -> str:
    """'sidrec X.Y.Z', from the installed package's metadata (no torch import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"sidrec {version('sidrec')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "sidrec (not installed: version unknown)"


def __getattr__(name: str):
    if name == "__version__":
        return version_text().removeprefix("sidrec ")
    if name in __all__:
        from sidrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'sidrec' has no attribute {name!r}")
