"""What `sidrec config show` prints: the resolved config as YAML, each setting with its comment from the source."""

from __future__ import annotations

import dataclasses
import inspect
import re

import yaml

from sidrec.config import Config, config_to_dict, sections


def key_comments() -> dict[str, str]:
    """Each dotted key's comment in this file or the component's: its trailing `# ...`, or the comment lines above."""
    out: dict[str, str] = {"seed": "seed of every random choice (sampling, initialisation, batches)"}
    for prefix, cls in sections():
        for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):  # inherited settings too
            above: list[str] = []
            for line in inspect.getsource(klass).splitlines()[1:]:
                text = line.strip()
                if text.startswith("#"):
                    above.append(text.lstrip("# "))
                    continue
                match = re.match(r"(\w+): [^=]+=.*?(?:  # (.*))?$", text)
                if match and match[1] != "own":
                    out[f"{prefix}.{match[1]}"] = match[2] or " ".join(above)
                above = []
    return out


def describe(cfg: Config, keep: set[str] | None = None) -> str:
    """The resolved config as YAML, each key followed by its comment; only the dotted keys in `keep`, if given
    (without `keep`: every setting, every component's own included)."""
    comments = key_comments()

    def lines(values: dict, prefix: str, indent: str) -> list[str]:
        out = []
        for key, value in values.items():
            dotted = f"{prefix}.{key}"
            if isinstance(value, dict):
                inner = lines(value, dotted, indent + "  ")
                out += [f"{indent}{key}:", *inner] if inner else []
            elif keep is None or dotted in keep:
                text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")
                note = comments.get(dotted, "")
                out.append(f"{indent}{key}: {text.strip()}" + (f"  # {note}" if note else ""))
        return out

    out = [f"seed: {cfg.seed}  # {comments['seed']}"]
    for section, values in config_to_dict(cfg, every=keep is None).items():
        if section != "seed":
            body = lines(values, section, "  ")
            out += [f"{section}:", *body] if body else []
    return "\n".join(out)


__all__ = ["describe", "key_comments"]
