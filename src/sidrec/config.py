"""Typed, frozen configuration: one dataclass per stage under one root `Config`.

Defaults live here, next to each field; a component (a model, a quantizer) owns the settings only it
reads in its own dataclass, found through its registry (`model.rpg.pooling`, `quantize.opq.iters`).
Experiment YAML files list only what differs, by section (`model:` / `train:` ...), a component's own
settings as a nested mapping (`model: {rpg: {pooling: mean}}`); the CLI adds dotted `key=value`
overrides. Unknown keys and values of the wrong type fail loudly with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sidrec.config_sections import AlignConfig, RankConfig, RewardConfig
from sidrec.config_values import added, annotation, coerce, packaged_configs, parse_value, resolve_config_path

# Components that own settings, per section: "model" -> {model name: its config dataclass}, "quantize" -> {...}.
# Filled by the registries (models.REGISTRY entries' `config`, quantize.QUANTIZERS classes' CONFIG), read lazily
# so that a component registered later (a plugin) owns its settings too.
OWNERS: dict[str, Callable[[], dict[str, type]]] = {}


def owned(section: str) -> dict[str, type]:
    """{component name: the config dataclass it owns} for a section ({} for sections without components)."""
    import sidrec.models  # noqa: F401 - importing the registries fills OWNERS
    import sidrec.quantize  # noqa: F401

    return OWNERS[section]() if section in OWNERS else {}


class _Owner:
    """A section whose components own settings: `section.<component>` is that component's config dataclass,
    with the values set in `own` and its defaults for the rest (`cfg.model.rpg.pooling`)."""

    SECTION = ""

    def __getattr__(self, name: str):  # only called for names that are not fields
        if name.startswith("_") or name == "own":
            raise AttributeError(name)
        cls = owned(self.SECTION).get(name)
        if cls is None:
            raise AttributeError(f"{self.SECTION} has no setting or component with settings called '{name}'")
        return dict(self.own).get(name) or cls()

    def component(self):
        """The settings of the chosen component (`self.name`), or None when it owns none."""
        cls = owned(self.SECTION).get(self.name)
        return None if cls is None else getattr(self, self.name)

    def replace(self, **values):
        """A copy with settings changed by name: shared ones, and the chosen component's own
        (`ModelConfig().replace(name="sasrec", d_model=64, loss="bce")`)."""
        shared = {k: v for k, v in values.items() if k in settings_of(type(self))}
        new = dataclasses.replace(self, **shared)
        rest = {k: v for k, v in values.items() if k not in shared}
        if not rest:
            return new
        cls = owned(self.SECTION).get(new.name)
        unknown = sorted(set(rest) - set(settings_of(cls) if cls else ()))
        if unknown:
            raise ValueError(f"{self.SECTION}.{new.name} has no settings {', '.join(unknown)}")
        own = {**dict(new.own), new.name: dataclasses.replace(getattr(new, new.name), **rest)}
        return dataclasses.replace(
            new, own=tuple(sorted((k, v) for k, v in own.items() if v != owned(self.SECTION)[k]()))
        )


@dataclass(frozen=True)
class DataConfig:
    name: str = "beauty"  # bundled dataset used when `path` is empty
    path: str = ""  # a dataset folder or file; empty = the bundled `name`
    format: str = "auto"  # auto | normalized | table | p5 | amazon2014 | movielens
    items_path: str = ""  # `table` format: the items file (CSV / Parquet / JSONL); empty = no item text
    user_col: str = "user_id"  # `table` format: column names of the interactions file
    item_col: str = "item_id"
    time_col: str = "position"  # a timestamp or a 0-based position; ties keep file order
    item_key: str = "item_id"  # `table` format: the item id column of the items file
    kcore: int = 0  # drop users/items with < k interactions, repeatedly (0 = off; amazon2014 uses 5)
    min_interactions: int = 3  # users with fewer cannot be split leave-one-out and are dropped
    max_history: int = 20  # keep only the last N items of a history (TIGER: 20)
    # Item text from its fields; lists are joined with ' > '. Empty = built from the text fields found
    # (title or name; categories or genres; brand; description), e.g. "{title}; {categories}" for Beauty.
    text_template: str = ""
    allow_missing_text: bool = False  # run even when most items have no text (their text is then their id)
    encoding_errors: str = "strict"  # strict (stop at a non-UTF-8 byte) | replace (U+FFFD, counted and logged)
    max_users: int = 0  # keep a deterministic sample of this many users (0 = all); for toy runs
    # drop rows whose item is the user's previous one (kept by default: a revisit, as on Yelp; rows repeating
    # another row's user, item and time are always dropped)
    drop_consecutive_repeats: bool = added(False, before=False)
    # cold-start protocol: hold out this share of the items (drawn by `seed` among the items that end a user's
    # sequence); every interaction with them is dropped except those test targets, so no model trains on them
    cold_items: float = added(0.0, before=0.0)
    # list protocol (session-wise generation, OneRec): hold out each user's last N items (users with at least
    # N + min_interactions) before the leave-one-out split; no stage trains on them, `evaluate` scores whole
    # generated lists against them (0 = off)
    list_items: int = added(0, before=0)


@dataclass(frozen=True)
class EmbedConfig:
    name: str = "sentence"  # sentence | hashing
    model: str = "all-MiniLM-L6-v2"  # sentence-transformers name or local path (offline first)
    batch_size: int = 256
    normalize: bool = True  # L2-normalise the vectors
    dim: int = 384  # hashing embedder only: output dimension
    device: str = "auto"  # auto | cpu | cuda
    chunk_size: int = 100_000  # items embedded at a time into the memory-mapped embeddings.npy (large catalogs)


@dataclass(frozen=True)
class QuantizeConfig(_Owner):
    """The settings every quantizer reads; each quantizer's own live in its class's CONFIG (`quantize.<name>.*`)."""

    SECTION = "quantize"
    # opq (optimized product quantization: `levels` = M unordered digits, for rpg; the default) | pq
    # | rkmeans | rkmeans_balanced | rvq | rqvae (residual: `levels` = L ordered codebooks, for tiger / decoder)
    name: str = "opq"
    levels: int = 16  # codebooks: M digits (pq / opq; RPG's paper uses 32 on Beauty) or L residual levels
    codebook_size: int = 256  # K codes per codebook
    # tiger (an extra code per collision group) | random (re-draw the last code) | none (SIDs may collide; a beam on a
    # shared SID yields one of its items at random, the others follow every beam's pick: GRID's Table 7 alternative)
    dedup: str = "random"
    kmeans_iters: int = 50  # k-means iterations (every k-means codebook, and the init of rvq / rqvae)
    # Items the quantizer is fitted on: a seeded sample of this many when the catalog is larger (0 = all; every item
    fit_sample: int = 65536  # is then encoded, in chunks). 65,536 = 256 points per code for K = 256 (faiss's default)
    # Collaborative part of the vectors the quantizer sees (quantize/collab.py): PPMI of items within
    # collab_window positions in the training histories, SVD to collab_dim, L2-normalised, times collab_weight,
    # appended to the text vector (0 = text only: the tiger-family configs).
    collab_dim: int = added(64, before=0)
    collab_weight: float = added(1.0, before=1.0)
    collab_window: int = added(3, before=3)
    # items with no co-occurrence in training: zero (text alone) | neighbours (the mean of their 10 nearest items')
    collab_cold: str = added("zero", before="zero")  # collaborative vectors by text)
    own: tuple = field(default=(), repr=False)  # (component name, its settings) set away from their defaults


@dataclass(frozen=True)
class ModelConfig(_Owner):
    """The settings models share; each model's own live in its registry entry's config (`model.<name>.*`)."""

    SECTION = "model"
    # rpg (every digit of the next item's long SID in one pass; the default) | tiger (encoder-decoder over SID tokens,
    # beam search) | decoder (decoder-only over SID tokens, n_enc + n_dec layers deep) | sasrec | hstu | gru4rec
    # (item IDs)
    name: str = "rpg"
    d_model: int = 128
    n_heads: int = 4  # GRID / TIGER: 4+4 layers, 6 heads x 64, d_ff 1024 (configs/tiger_grid.yaml)
    d_head: int = 32
    d_ff: int = 512
    n_enc_layers: int = 2  # rpg / sasrec / hstu / gru4rec: the number of layers
    n_dec_layers: int = 2  # tiger: decoder layers; decoder: added to n_enc_layers
    dropout: float = 0.1
    user_tokens: int = 0  # tiger / decoder: hashed user-id tokens prepended to the input (0 = off, GRID's best)
    attention: str = "math"  # math (plain matmul + softmax; 1.6x faster than sdpa for CPU training) | sdpa (fused; GPU)
    # items already in the history. mixture: a repeat / explore mixture (RepeatNet): a gate learns when the user
    # comes back and a pointer to which history item, the model's scores rank the new items (models/repeat.py)
    # | none: the model's scores as they are, history items ranked like any other
    repeat: str = added("mixture", before="none")
    own: tuple = field(default=(), repr=False)  # (component name, its settings) set away from their defaults


@dataclass(frozen=True)
class TrainConfig:
    # Training length. The LR schedule (warm-up, then cosine to min_lr_ratio) spans epochs x batches per
    # epoch steps, so a machine's speed changes the wall time, never the run; early stopping may end sooner.
    epochs: int = 20
    batch_size: int = 256
    lr: float = 5e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05  # cosine decay to lr * this
    grad_clip: float = 1.0
    ema: float = 0.0  # decay of a moving average of the weights, validated and saved instead (0 = off; e.g. 0.999)
    sliding_window: bool = True  # every prefix of a training sequence is a sample (TIGER/GRID)
    # tiger / decoder: the target of an example is the next m items, m = target_items, each item's SID in turn
    # (OneRec's session-wise generation); 1 = the next item
    target_items: int = added(1, before=1)
    # with target_items > 1 and timestamps in the data: a target session ends at a gap longer than this many hours
    # (0 = no cut: always the next m items, as on data without timestamps)
    session_gap: float = added(0.0, before=0.0)
    # rpg, sasrec, hstu (one causal window of targets per example): all (a long sequence gives max_history-target
    # windows back to its start: every target used) | last (each user's most recent window; SASRec's reference code)
    windows: str = added("all", before="last")
    precision: str = "auto"  # auto (bf16 on CUDA and on CPUs with native bf16: AMX / AVX512-BF16) | bf16 | fp32
    eval_every: int = 1  # epochs between validation passes
    eval_users: int = 3000  # validation users scored per pass (fixed sample; 0 = all)
    valid_beam_width: int = 20  # beam of those per-epoch passes (0 = eval.beam_width); the final one uses eval's
    patience: int = 10  # validation passes without NDCG@10 gain before stopping
    # Optional safety cap on training wall time (0 = none). Checked between epochs; it stops training but never
    # changes the schedule, and a capped run says so (time_capped in train_summary.json and the record).
    max_minutes: float = 0.0
    threads: int = 0  # torch intra-op threads (0 = torch default)
    device: str = "auto"  # auto | cpu | cuda


@dataclass(frozen=True)
class EvalConfig:
    beam_width: int = 40  # beams kept per user (>= max(ks)); 40 beat 20 on every validation metric, Beauty
    constrained: bool = True  # prefix-trie-constrained decoding (only valid SIDs)
    ks: tuple[int, ...] = (5, 10)
    # Splits scored by `evaluate`: [valid] while tuning (test is never looked at), [valid, test] once, at
    # the end, for the configuration chosen on validation.
    splits: tuple[str, ...] = ("valid", "test")
    batch_size: int = 512  # users per beam-search batch
    top_n: int = 10  # items per user written to predictions.csv
    decode: str = "exact"  # rpg: exact (score every item: one sparse matmul) | graph (RPG's item-graph propagation)
    graph_beams: int = 10  # graph: items kept per propagation step (>= max(ks))
    graph_edges: int = 100  # graph: neighbours per item
    graph_steps: int = 3  # graph: propagation steps
    # model.repeat=mixture: temperatures of the explore part (P_e = softmax(scores / t)). One value: used as is
    # (1: as trained). Several, e.g. [0.5,0.75,1,1.5,2,3]: evaluate scores the validation split with each and keeps
    # the best NDCG@10 for test (a host that overfits its training targets is overconfident beside the history).
    explore_temperature: tuple[float, ...] = added((1.0,), before=[1.0])
    # SID generators: the M items with no training interaction (cold) nearest the history by text join the beam's
    # items, all ranked by the generator's SID log-probability (LIGER's cold candidates, Yang et al., 2024); 0 = off
    cold_candidates: int = added(0, before=0)


@dataclass(frozen=True)
class Config:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    align: AlignConfig = field(default_factory=AlignConfig)


_SECTION_CLASSES = {
    "data": DataConfig,
    "embed": EmbedConfig,
    "quantize": QuantizeConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "rank": RankConfig,
    "reward": RewardConfig,
    "align": AlignConfig,
}


def settings_of(cls: type) -> dict[str, dataclasses.Field]:
    """A config dataclass's settings by name (`own`, the store of component settings, is not one)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.name != "own"}


def valid_keys() -> list[str]:
    """All dotted keys a YAML file or override may set: `section.setting` and `section.component.setting`."""
    return ["seed", *(f"{prefix}.{k}" for prefix, cls in sections() for k in settings_of(cls))]


def _field_type(key: str) -> str:
    """The (string) annotation of a dotted key's field; '' when there is no such field."""
    section, _, rest = key.partition(".")
    comp, _, name = rest.partition(".")
    cls = owned(section).get(comp) if name else _SECTION_CLASSES.get(section)
    field_ = settings_of(cls).get(name or comp) if cls else None
    return annotation(field_) if field_ else ""


def _apply(cfg: Config, key: str, value: object) -> Config:
    if key == "seed":
        return dataclasses.replace(cfg, seed=coerce(value, "int", key))
    section, _, rest = key.partition(".")
    cls = _SECTION_CLASSES.get(section)
    if cls is None:
        raise ValueError(_unknown(key))
    sub, owners = getattr(cfg, section), owned(section)
    comp, _, name = rest.partition(".")
    if name:  # section.component.setting: a setting the component owns
        if comp not in owners:
            with_own = f" (components with settings of their own: {', '.join(owners)})" if owners else ""
            raise ValueError(f"unknown config key '{key}': {section} has no component '{comp}'{with_own}")
        fields = settings_of(owners[comp])
        if name not in fields:
            raise ValueError(f"unknown config key '{key}'. Settings of {section}.{comp}: {', '.join(fields)}")
        settings = dataclasses.replace(getattr(sub, comp), **{name: coerce(value, annotation(fields[name]), key)})
        own = {k: v for k, v in sub.own if k != comp}
        if settings != owners[comp]():
            own[comp] = settings
        return dataclasses.replace(cfg, **{section: dataclasses.replace(sub, own=tuple(sorted(own.items())))})
    fields = settings_of(cls)
    if comp not in fields:
        homes = [f"{section}.{c}.{comp}" for c, own in owners.items() if comp in settings_of(own)]
        if homes:
            raise ValueError(f"config key '{key}' is a setting of a component: write {' or '.join(homes)}")
        raise ValueError(_unknown(key))
    sub = dataclasses.replace(sub, **{comp: coerce(value, annotation(fields[comp]), key)})
    return dataclasses.replace(cfg, **{section: sub})


def _unknown(key: str) -> str:
    """The error for an unknown dotted key: the closest valid keys, else every valid key."""
    import difflib

    close = difflib.get_close_matches(key, valid_keys(), n=3, cutoff=0.75)
    section = [k for k in close if k.split(".")[0] == key.split(".")[0]]
    close = section or close[:1]  # the key's own section's, else the closest one
    if close:
        return f"unknown config key '{key}': did you mean {' or '.join(close)}? (`sidrec config show --all` lists all)"
    return f"unknown config key '{key}'. Valid keys: {', '.join(valid_keys())}"


def _apply_section(cfg: Config, section: str, values: dict) -> Config:
    """One section's mapping; a component's own settings come as a nested mapping (`rpg: {pooling: mean}`)."""
    for key, value in values.items():
        if isinstance(value, dict):
            for name, inner in value.items():
                cfg = _apply(cfg, f"{section}.{key}.{name}", inner)
        else:
            cfg = _apply(cfg, f"{section}.{key}", value)
    return cfg


def _load_yaml(path: Path, seen: tuple[Path, ...]) -> Config:
    """Defaults (or the file's `base` config), then the file's sections."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ValueError(f"{path}: config bases form a cycle: {chain}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is not None and not isinstance(base, str):
        raise ValueError(f"{path}: base must be a config name or path, got {base!r}")
    if not base:
        cfg = Config()
    else:
        try:
            base_path = resolve_config_path(base)
        except ValueError as err:
            raise ValueError(f"{path}: base: {err}") from None
        cfg = _load_yaml(base_path, (*seen, path.resolve()))
    for section, values in raw.items():
        if section == "seed":
            cfg = _apply(cfg, "seed", values)
            continue
        if section not in _SECTION_CLASSES or not isinstance(values, dict):
            raise ValueError(
                f"{path}: unknown section '{section}' (or not a mapping). "
                f"Valid sections: seed, {', '.join(_SECTION_CLASSES)}"
            )
        try:
            cfg = _apply_section(cfg, section, values)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file (if any), then `key=value` overrides, all type-checked.

    A YAML file may start from another config (`base: beauty_tiger`, a shipped name or a path) and list
    only what differs from it."""
    cfg = _load_yaml(resolve_config_path(str(path)), ()) if path is not None else Config()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override '{item}' must look like key=value, e.g. train.epochs=10")
        key, text = key.strip(), text.strip()
        value = parse_value(text)
        if not isinstance(value, str) and _field_type(key) == "str":
            value = text  # `data.path=0.10` means the text typed, not str(0.1)
        cfg = _apply(cfg, key, value)
    return cfg


def config_to_dict(cfg: Config, every: bool = False) -> dict:
    """Nested plain data (config.yaml, records): each section's settings, with the chosen component's own settings
    (all of them, defaults included) and any other component's that were set, as nested mappings (`every`: every
    registered component's)."""
    out: dict = {"seed": cfg.seed}
    for section in _SECTION_CLASSES:
        sub = getattr(cfg, section)
        values = {k: getattr(sub, k) for k in settings_of(type(sub))}
        if isinstance(sub, _Owner):
            chosen = sub.component()
            parts = {**({sub.name: chosen} if chosen is not None else {}), **dict(sub.own)}
            if every:
                parts.update({comp: getattr(sub, comp) for comp in owned(section) if comp not in parts})
            values.update({comp: dataclasses.asdict(settings) for comp, settings in parts.items()})
        out[section] = _lists(values)
    return out


def _lists(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_lists(v) for v in obj]
    return obj


def upgrade(raw: dict) -> dict:
    """A stored nested config written before components owned their settings (one flat `model:` mapping) in
    today's shape: a flat key the chosen component owns moves into its mapping (under its `RENAMED` name, if
    renamed); one only other components own is dropped (that component was not chosen, so nothing read it)."""
    out = {}
    for section, values in raw.items():
        cls, owners = _SECTION_CLASSES.get(section), owned(section)
        if cls is None or not isinstance(values, dict) or not owners:
            out[section] = values
            continue
        common = settings_of(cls)
        chosen = owners.get(values.get("name", cls().name))
        renamed = getattr(chosen, "RENAMED", {}) if chosen else {}
        new: dict = {}
        for key, value in values.items():
            key_now = renamed.get(key, key)
            if key in common or isinstance(value, dict):
                new[key] = value
            elif chosen is not None and key_now in settings_of(chosen):
                new.setdefault(values.get("name", cls().name), {})[key_now] = value
            elif not any(key in settings_of(own) or key in getattr(own, "RENAMED", {}) for own in owners.values()):
                new[key] = value  # nobody owns it: left for _apply to reject
        out[section] = new
    return out


def config_from_dict(raw: dict) -> Config:
    """Rebuild a Config from `config_to_dict` output (e.g. a run's config.yaml, also one from before `upgrade`)."""
    cfg = Config()
    for section, values in upgrade(raw).items():
        cfg = _apply(cfg, "seed", values) if section == "seed" else _apply_section(cfg, section, values)
    return cfg


def sections() -> list[tuple[str, type]]:
    """(dotted prefix, config dataclass) of every section and of every component's own settings."""
    out = list(_SECTION_CLASSES.items())
    return out + [(f"{s}.{comp}", own) for s in _SECTION_CLASSES for comp, own in owned(s).items()]


__all__ = [
    "Config",
    "DataConfig",
    "EmbedConfig",
    "QuantizeConfig",
    "ModelConfig",
    "TrainConfig",
    "EvalConfig",
    "RankConfig",
    "RewardConfig",
    "AlignConfig",
    "added",
    "load_config",
    "config_to_dict",
    "config_from_dict",
    "owned",
    "sections",
    "settings_of",
    "upgrade",
    "valid_keys",
    "packaged_configs",  # config files: `config_values`
    "resolve_config_path",
]
