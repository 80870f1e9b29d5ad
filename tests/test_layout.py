"""The package's shape: imports point one way, down the pipeline; SQL lives in the catalog; the
terminal (click, tqdm) belongs to cli/.

Read from the source with ``ast``, so a lazy import inside a function counts as much as one
at the top of a module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "archiver"

# Top to bottom: a module may import only from a lower layer, or from its own package (fetch/,
# kit/, cli/, catalog/ import their own modules). Modules within one layer never import each
# other, but for the pairs listed in SIDEWAYS.
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"sync"},
    {"sync_log"},  # a sync's JSON-lines log
    {"zim"},  # the Kiwix ZIM: the kit's plan and pages, written with libzim
    {"kit", "fetch"},
    {"sniff"},
    {"choose", "media", "audit"},
    {"premis"},  # the PREMIS export, written from the history's reading of the catalog
    {"history"},  # an item's history, the JSONL export: read from the archive
    {"settled"},  # a sync that found nothing to do, sealed: the fiches, the archive, the kit
    {"survey"},  # what a sealed run found: the catalog's count, every path's lstat
    {"archive"},
    {"archive_upgrade"},  # an earlier release's archive moved into the store, once
    {"archive_store", "archive_versions"},  # the Archive class's parts, over its folder
    {"archive_folder"},  # the folders, the catalog, the checked way to a file
    {"archive_status"},  # what status shows: the catalog, and who holds the lock
    {"archive_paths", "archive_lock", "archive_records"},  # what the Archive class draws on
    {"catalog"},
    {"manifest", "collection"},
    {"fiche_cache"},  # parsed fiches kept by their bytes, for a sync to parse only the changed
    {"fiche_cache_reader"},  # the cache file read back: every record checked into an Entry
    {"code_key"},  # what archiver's code and its fiche parsers are: keys the cache and seals
    {"fiches", "manifest_reader"},  # reading a manifest back needs no fiche
    {"front_matter"},
    {"entry"},
    {
        "errors",
        "progress",
        "files",
        "names",
        "units",
        "urls",
        "links",
        "_version",
        "_probe_worker",
        "collector",
        "lazy",
    },
]
SIDEWAYS: set[tuple[str, str]] = set()
ROOT = {"__init__"}  # the package's public face re-exports from below; nothing imports it


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]  # fetch/__init__.py is the module fetch
        found[".".join(parts)] = path
    return found


def _unit(module: str) -> str:
    """The unit a module belongs to: ``fetch.plan`` → ``fetch``."""
    return module.split(".")[0]


def _imports(module: str, path: Path) -> set[str]:
    """The archiver modules ``module`` imports, as dotted names within the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = [] if module == "__init__" else module.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:  # from . import name: a module of that package (or a name of its own)
                found.update(".".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "archiver" or node.module.startswith("archiver."):
                found.add(node.module.removeprefix("archiver").lstrip(".") or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("archiver."):
                    found.add(alias.name.removeprefix("archiver."))
    return found


def _layer(unit: str) -> int:
    for number, layer in enumerate(LAYERS):
        if unit in layer:
            return number
    raise AssertionError(f"{unit} is in no layer of tests/test_layout.py: place it")


def test_every_module_is_placed_in_a_layer() -> None:
    for module in _modules():
        if module != "__init__":
            _layer(_unit(module))


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m not in ROOT))
def test_imports_point_down_the_pipeline(module: str) -> None:
    here = _unit(module)
    for imported in sorted(_imports(module, _modules()[module])):
        there = _unit(imported)
        if there == here or (here, there) in SIDEWAYS:
            continue
        assert there not in ROOT, f"{module} imports the package's root; import the module"
        assert _layer(there) > _layer(here), f"{module} imports {imported}: against the pipeline"


def test_fetch_and_kit_never_import_each_other() -> None:
    for module, path in _modules().items():
        units = {_unit(name) for name in _imports(module, path)}
        if _unit(module) == "fetch":
            assert "kit" not in units, module
        if _unit(module) == "kit":
            assert "fetch" not in units, module


def test_the_layout_test_sees_imports() -> None:
    """The checks above would pass on a parser that finds nothing: make sure it finds them."""
    modules = _modules()
    assert {"catalog", "entry", "errors", "files"} <= _imports("archive", modules["archive"])
    assert {"fetch.plan", "fetch.settings", "urls"} <= _imports("fetch", modules["fetch"])
    assert "kit.bag" in _imports("cli.upkeep", modules["cli.upkeep"])  # verify's, lazy


_SQL = re.compile(
    r"\b(SELECT\s+.+\s+FROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+TABLE|ALTER\s+TABLE|PRAGMA\s+[a-z_]+)\b"
)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_only_the_catalog_speaks_sql(module: str) -> None:
    path = _modules()[module]
    text = path.read_text(encoding="utf-8")
    imports_sqlite = "sqlite3" in {
        alias.name
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    if _unit(module) in ("catalog", "errors"):  # errors maps sqlite3's exceptions, speaks no SQL
        assert _unit(module) == "catalog" or not _SQL.search(text)
        return
    assert not imports_sqlite, f"{module} imports sqlite3"
    assert not _SQL.search(text), f"{module} contains SQL"


def _foreign_imports(module: str) -> list[str]:
    """The modules from outside the package that ``module`` imports, lazily or not."""
    tree = ast.parse(_modules()[module].read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _unit(m) != "cli"))
def test_only_cli_draws_on_the_terminal(module: str) -> None:
    for name in _foreign_imports(module):
        assert name.split(".")[0] not in ("click", "tqdm"), f"{module} imports {name}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_only_front_matter_loads_yaml(module: str) -> None:
    """PyYAML's own loaders build aliases, .nan and 5,000-digit integers: the one loader that
    refuses them is in front_matter, and nothing else loads YAML behind its back."""
    for name in _foreign_imports(module):
        if name.split(".")[0] in ("yaml", "frontmatter"):
            assert module == "front_matter", f"{module} imports {name}"
