"""The model registry: one `ModelEntry` per model, the only place that knows a model by its name.

A model is a module that defines its `nn.Module` class (built as `Class(shape)`), its shape dataclass
and a `ModelEntry`, plus one line that registers the entry (`models/__init__.py` for the shipped ones;
`register` for a user's own, from any module). Everything else (building, loading, the stages a run
needs, the training fingerprint, the record's label) reads the entry:

- `kind` says what the model consumes and how it recommends: `sid` models generate Semantic IDs
  token by token (contract: `models.generator`; beam search), `parallel` models predict every digit
  of a long SID in one pass and score items from those digits (contract: `score_all`; RPG), `id`
  models score item IDs directly (contract: `loss(batch)` on {"inputs", "targets"}, `score_all`).
  `sid` and `parallel` models need the embed and quantize stages.
- `config` is the dataclass of the settings only this model reads, set as `model.<name>.<setting>`
  (`model.rpg.pooling=mean`; YAML: `model: {rpg: {pooling: mean}}`); the settings every model shares
  (width, depth, dropout, ...) are `ModelConfig`'s. The shape's fields are filled from the shared and
  the model's own settings of the same name; `layers` names the shared settings summed into a shape
  field `n_layers`; `describe` gives the record's label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from sidrec.config import Config, ModelConfig

KINDS = ("sid", "parallel", "id")


def _no_label(cfg: Config) -> str:
    return ""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its name, class, shape dataclass, kind and paper."""

    name: str  # the `model.name` that selects it
    model: type[nn.Module]  # built as model(shape)
    shape: type  # frozen dataclass of the model's hyper-parameters (saved with the weights)
    kind: str  # sid | parallel | id (see the module docstring)
    paper: str  # the reference the module implements
    config: type | None = None  # dataclass of the settings only this model reads (`model.<name>.*`)
    layers: tuple[str, ...] = ("n_enc_layers",)  # model.* settings summed into the shape's n_layers
    describe: Callable[[Config], str] = field(default=_no_label)  # the architecture after the name in a record
    unread: Callable[[ModelConfig], tuple[str, ...]] = field(default=lambda m: ())  # shape fields a setting turns off

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model '{self.name}': kind must be one of {', '.join(KINDS)}, got '{self.kind}'")
        if not dataclasses.is_dataclass(self.shape):
            raise TypeError(f"model '{self.name}': shape must be a dataclass, got {self.shape!r}")
        if self.config is not None and not dataclasses.is_dataclass(self.config):
            raise TypeError(f"model '{self.name}': config must be a dataclass, got {self.config!r}")

    @property
    def needs_sids(self) -> bool:
        """Whether the model reads Semantic IDs (so the embed and quantize stages run before training)."""
        return self.kind != "id"

    def shape_fields(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.shape)}

    def own(self, m: ModelConfig):
        """This model's own settings in `m` (its config's defaults where unset); None if it owns none."""
        return None if self.config is None else dict(m.own).get(self.name) or self.config()

    def settings(self, m: ModelConfig) -> tuple[str, ...]:
        """The `model.*` settings this model reads (its training fingerprint), without the prefix: the shared ones
        its shape takes, then its own as `<name>.<setting>`; those `unread` names are left out."""
        names = self.shape_fields() & _shared()
        if "n_layers" in self.shape_fields():
            names |= set(self.layers)
        off = set(self.unread(m))
        own = [f"{self.name}.{k}" for k in self._own_fields() if k not in off]
        return (*sorted((names | {"name"}) - off), *sorted(own))

    def shape_kwargs(self, m: ModelConfig) -> dict:
        """The shape's fields that come from settings: same-named shared and own values, n_layers from `layers`."""
        kwargs = {k: getattr(m, k) for k in self.shape_fields() & _shared()}
        if self.config is not None:
            own = dataclasses.asdict(self.own(m))
            kwargs.update({k: own[k] for k in self.shape_fields() & set(own)})
        if "n_layers" in self.shape_fields():
            kwargs["n_layers"] = sum(getattr(m, k) for k in self.layers)
        return kwargs

    def _own_fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config)] if self.config is not None else []

    def label(self, cfg: Config) -> str:
        """The record's model label: the name, then what `describe` says."""
        text = self.describe(cfg)
        return f"{self.name} {text}" if text else self.name


REGISTRY: dict[str, ModelEntry] = {}


def _shared() -> set[str]:
    return {f.name for f in dataclasses.fields(ModelConfig)} - {"own"}


def register(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add a model to the registry (`model.name=<entry.name>` then selects it); returns the entry."""
    if entry.name in REGISTRY and not replace and REGISTRY[entry.name] is not entry:
        raise ValueError(f"model '{entry.name}' is already registered (pass replace=True to override it)")
    REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def entry(name: str) -> ModelEntry:
    """The registered model called `name`; ValueError naming the known ones otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model.name '{name}'. Known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


# Pieces of the labels that several models share.
def width(m: ModelConfig, ffn: bool = True) -> str:
    return f"d{m.d_model} {m.n_heads}x{m.d_head}" + (f" ff{m.d_ff}" if ffn else "")


def moe(own) -> str:
    """A model's mixture-of-experts settings (`models.moe.MoEConfig`) as its record label says them."""
    return f" moe{own.experts}top{own.expert_top_k}" if own.experts else ""


def scoring(m: ModelConfig, own) -> str:
    """An item-ID model's loss, cosine temperature (its `IDScoring`) and repeat mode, as its record label says them."""
    cos = f" cos/{own.temperature:g}" if own.temperature > 0 else ""
    return f"loss={own.loss}{cos}{repeat(m)}"


def repeat(m: ModelConfig) -> str:
    return f" repeat={m.repeat}" if m.repeat != "none" else ""


__all__ = ["KINDS", "REGISTRY", "ModelEntry", "entry", "moe", "register", "repeat", "scoring", "unregister", "width"]
