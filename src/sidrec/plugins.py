"""Components from outside sidrec: modules imported before a command runs, so that their `register` lines run.

A model, tokenizer or embedder of your own lives in your own module, which registers it when imported
(`sidrec.models.register(ENTRY)`, `sidrec.quantize.QUANTIZERS["name"] = Class`, ...). The CLI imports:

- every module named in the `SIDREC_PLUGINS` environment variable (comma-separated; the working
  directory is searched first, so `SIDREC_PLUGINS=my_model sidrec run model.name=mine` finds
  `./my_model.py`);
- every entry point of the group `sidrec.plugins` of an installed package (in its pyproject.toml:
  `[project.entry-points."sidrec.plugins"] mine = "my_package.my_model"`).

From Python, import your module before calling `sidrec.run` or `sidrec.load`.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

ENV = "SIDREC_PLUGINS"
GROUP = "sidrec.plugins"


def load() -> list[str]:
    """Import the plugin modules (see the module docstring); returns their names. ImportError names the source."""
    names = [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]
    if names and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(
                f"{ENV}={os.environ[ENV]!r}: cannot import '{name}' ({err}); give importable module names, "
                "comma-separated (a file my_model.py in the working directory is 'my_model')"
            ) from err
    for point in entry_points(group=GROUP):
        point.load()
        names.append(point.value)
    return names


__all__ = ["ENV", "GROUP", "load"]
