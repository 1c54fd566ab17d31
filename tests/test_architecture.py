"""Structure rules (docs/ARCHITECTURE.md): the import DAG, file size, no references outside the repo."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sidrec"
TESTS = ROOT / "tests"

BASE = {"config", "config_values", "config_sections", "io"}
LEAVES = {"data", "embed", "quantize", "models", "decode"}
COMPOSERS = {"recommender", "train", "metrics", "report"}
# Each top-level unit of sidrec (a module, or a subpackage taken whole) -> the units it may import.
# Imports inside a unit (sidrec.data.split -> sidrec.data.schema) are always allowed.
ALLOWED: dict[str, set[str]] = {
    "config": {"config_values", "config_sections"},
    "config_sections": set(),  # the sections of the stages after training (rank, reward, align)
    "config_values": set(),  # text and YAML values -> a setting's type
    "io": {"config"},
    **{leaf: set(BASE) for leaf in LEAVES},  # never each other: beam search takes a step callable, not a model
    "distributed": set(),  # torch.distributed glue (torchrun): rank, barriers, broadcasts
    **{unit: BASE | LEAVES | {"distributed"} for unit in COMPOSERS},
    "flops": set(),  # arithmetic only
    "plugins": set(),  # imports the user's own component modules (importlib only)
    # times the composed parts, like `pipeline` but writes no run directory
    "bench": BASE | LEAVES | COMPOSERS | {"flops"},
    "baselines": BASE | {"recommender", "metrics"},  # rules with no training (popular, recent, text kNN), scored
    "fingerprint": set(BASE),  # run integrity: keys a stage's outputs by its settings and input files
    "stages": BASE | {"distributed", "fingerprint"},  # a stage's specs and status, the decorator that registers it
    "align": BASE | LEAVES | COMPOSERS | {"parts"},  # OneRec: session lists, the reward model, preference alignment
    "ranking": BASE | LEAVES | COMPOSERS,  # the generative ranker behind a retriever, its examples and measures
    "config_show": {"config"},  # `sidrec config show`: the resolved config with each setting's comment
    "catalog": BASE | LEAVES,  # items added to a trained run: their SIDs from their text
    "report_html": BASE | COMPOSERS,  # report.html from a run directory's artifacts
    # everything but the CLI
    "parts": BASE
    | LEAVES
    | COMPOSERS
    | {"catalog"},  # what differs between the model kinds (model, examples, recommender)
    "pipeline": BASE
    | LEAVES
    | COMPOSERS
    | {"bench", "fingerprint", "report_html", "distributed", "parts", "baselines", "catalog", "stages", "ranking"}
    | {"align"},
    "api": BASE | LEAVES | COMPOSERS | {"pipeline", "catalog"},  # a trained run by original ids (`sidrec.load`)
    "serve": BASE | LEAVES | COMPOSERS | {"pipeline", "api", "catalog"},
    "sweep": BASE | LEAVES | COMPOSERS | {"pipeline", "fingerprint"},
    "cli": BASE
    | LEAVES
    | COMPOSERS
    | {"pipeline", "bench", "serve", "api", "report_html", "fingerprint", "sweep"}
    | {"distributed", "plugins", "config_show", "catalog"},
    "__init__": {"api"},  # only lazily, in __getattr__: `import sidrec` must stay cheap (test_api checks)
    "__main__": {"cli"},  # `python -m sidrec`: the one module that may import the CLI
}
# Imports allowed only inside one function, at call time, outside the DAG above: `config.owned` loads the two
# registries whose components own settings (`model.rpg.*`, `quantize.opq.*`) wherever a config is parsed; both
# import `config` at module level, so by then `config` is complete.
LAZY = {("config", "owned"): {"models", "quantize"}}


def unit_of(path: Path) -> str:
    """src/sidrec/data/split.py -> 'data'; src/sidrec/io.py -> 'io'."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def module_name(path: Path) -> list[str]:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def sidrec_imports(source: str, package: list[str]) -> set[str]:
    """Fully qualified sidrec modules (or names) imported anywhere in `source`, including inside functions.

    `package` is the importing module's package (['sidrec', 'data'] for sidrec/data/split.py), for
    resolving relative imports.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from sidrec import io`
    return {name for name in found if name == "sidrec" or name.startswith("sidrec.")}


def imported_units(path: Path) -> set[str]:
    """The top-level sidrec units that `path` imports."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path)[:-1]
    units = set()
    for name in sidrec_imports(path.read_text(), package):
        parts = name.split(".")
        if len(parts) < 2:
            continue
        head = parts[1]
        if (SRC / head).is_dir() or (SRC / f"{head}.py").exists():
            units.add(head)
    return units


def lazy_imports(path: Path, function: str) -> set[str]:
    """The units `path` imports inside `function`, if the rest of the file does not import them too."""
    tree = ast.parse(path.read_text())
    inside = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    package = module_name(path)[:-1]
    units = {name.split(".")[1] for name in sidrec_imports(ast.unparse(inside), package) if "." in name}
    rest = ast.unparse(ast.Module([n for n in tree.body if n is not inside], []))
    return units - {name.split(".")[1] for name in sidrec_imports(rest, package) if "." in name}


SOURCES = sorted(SRC.rglob("*.py"))


def test_sources_found():
    assert len(SOURCES) > 20
    assert {"config", "io", "pipeline", "cli", "decode", "models"} <= {unit_of(p) for p in SOURCES}


def test_import_rules():
    problems = []
    for path in SOURCES:
        unit = unit_of(path)
        if unit not in ALLOWED:
            problems.append(f"{unit}: a new top-level unit; add its import rule to ALLOWED in {Path(__file__).name}")
            continue
        lazy = {u for (owner, function), units in LAZY.items() if owner == unit for u in units}
        forbidden = imported_units(path) - ALLOWED[unit] - {unit} - lazy
        for (owner, function), units in LAZY.items():
            if owner == unit and lazy_imports(path, function) != (imported_units(path) & units):
                problems.append(f"{path.relative_to(ROOT)}: imports {sorted(units)} outside {function}()")
        if forbidden:
            problems.append(
                f"{path.relative_to(ROOT)} ({unit}) imports {sorted(forbidden)}; allowed: {sorted(ALLOWED[unit])}"
            )
    assert not problems, "\n".join(problems)


# Consumers of generators talk to the contract (models.generator) and the registry, never to a model.
CONTRACT_ONLY = [SRC / "recommender.py", SRC / "bench.py", *sorted((SRC / "decode").glob("*.py"))]
CONTRACT_ONLY += sorted((SRC / "serve").glob("*.py")) if (SRC / "serve").is_dir() else []
REGISTRY_NAMES = {
    "build_model",
    "load_model",
    "model_kind",
    "needs_sids",
    "entry",
    "REGISTRY",
    "ModelEntry",
    "registry",
}


def test_consumers_use_the_generator_contract_only():
    model_modules = {p.stem for p in (SRC / "models").glob("*.py")} - {"__init__", "generator", "registry"}
    bad = []
    for path in CONTRACT_ONLY:
        for name in sidrec_imports(path.read_text(), module_name(path)[:-1]):
            parts = name.split(".")
            if parts[:2] != ["sidrec", "models"] or len(parts) < 3:
                continue
            if parts[2] in model_modules or (len(parts) == 3 and parts[2] not in REGISTRY_NAMES | {"generator"}):
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, f"model-specific imports (use sidrec.models.generator): {bad}"


def test_nothing_imports_the_cli():
    importers = [p for p in SOURCES if "cli" in imported_units(p) and unit_of(p) != "__main__"]
    assert not importers


def test_allowed_map_is_acyclic():
    """The rules themselves form a DAG, so no import cycle between units can satisfy them."""
    done: set[str] = set()

    def visit(unit: str, stack: tuple[str, ...]) -> None:
        assert unit not in stack, f"cycle: {' -> '.join((*stack, unit))}"
        if unit in done:
            return
        for dep in ALLOWED.get(unit, ()):
            visit(dep, (*stack, unit))
        done.add(unit)

    for unit in ALLOWED:
        visit(unit, ())


def test_import_parser_sees_every_form():
    source = """
import numpy as np
import sidrec.io
from sidrec import config, pipeline
from . import trie
from ..models.tiger import TIGER
def f():
    from sidrec.cli import app
"""
    found = sidrec_imports(source, ["sidrec", "decode"])
    assert {"sidrec.io", "sidrec.config", "sidrec.pipeline", "sidrec.decode.trie", "sidrec.models.tiger"} <= found
    assert "sidrec.cli" in found and "numpy" not in found
    assert imported_units(SRC / "decode" / "beam.py") == {"decode"}
    assert imported_units(SRC / "cli.py") >= {"io", "pipeline", "config", "report"}  # incl. inside functions


PY_FILES = sorted([*SRC.rglob("*.py"), *TESTS.rglob("*.py")])


def test_files_are_short():
    long = {str(p.relative_to(ROOT)): n for p in PY_FILES if (n := len(p.read_text().splitlines())) >= 500}
    assert not long, f"files of 500 lines or more (split them): {long}"


OUTSIDE = ("../" + "shared", "/work/" + "shared")  # spelled in two parts so this file does not match


def test_no_references_outside_the_repository():
    offenders = []
    for root in (SRC, TESTS):
        for path in root.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            data = path.read_bytes()
            offenders += [f"{path.relative_to(ROOT)}: {ref}" for ref in OUTSIDE if ref.encode() in data]
    assert not offenders
