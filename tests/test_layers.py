"""The import graph: the facade on top of its parts, the parts on storage, none reaching up.

Read from the source with `ast` (every import, also those inside functions and under
TYPE_CHECKING), so a lazy import cannot hide a layer crossing.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "aggregator"
#: The Aggregator's parts (docs/development.md, Layout): each one thing, below the facade.
PARTS = {"poller", "placer", "publisher", "mailer", "feedadmin", "watcher", "browse", "parts"}
#: What only the facade and wiring (core) and the scheduler/CLI/web server above it may import.
ABOVE_PARTS = {"aggregator.core", "aggregator.cli", "aggregator.scheduler", "aggregator.web"}


def imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) pairs `path` imports; name is "" for `import module`."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update((node.module, alias.name) for alias in node.names)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph() -> dict[str, set[tuple[str, str]]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def under(module: str, roots: set[str]) -> bool:
    """Whether `module` is one of `roots` or inside one of them (a package's modules)."""
    return any(module == r or module.startswith(r + ".") for r in roots)


def test_the_parts_do_not_import_the_facade_the_cli_or_the_scheduler() -> None:
    for module, imported in graph().items():
        if module.rpartition(".")[2] in PARTS:
            reaching_up = {m for m, _ in imported if under(m, ABOVE_PARTS)}
            assert not reaching_up, f"{module} imports {reaching_up}"


#: The backends' packages and what they open stores with.
BACKENDS = {"aggregator.storage.sqlite", "aggregator.storage.postgres"}
CONCRETE = {"SqliteStorage", "open_storage", "PostgresStorage", "open_postgres"}


def test_only_the_wiring_knows_the_concrete_storage() -> None:
    """The backends (SqliteStorage, PostgresStorage and what opens them) are named only by
    storage itself and the wiring (core.make_aggregator); parts.Shared holds what the wiring
    opened as a Storage."""
    allowed = {"aggregator.core"}
    imports_of = graph()
    assert ("aggregator.storage.postgres", "open_postgres") in imports_of["aggregator.core"]
    for module, imported in imports_of.items():
        if module.startswith("aggregator.storage"):
            continue
        concrete = {(m, n) for m, n in imported if under(m, BACKENDS) or n in CONCRETE}
        assert module in allowed or not concrete, f"{module} imports {concrete}"


def test_each_backend_imports_neither_the_other_nor_its_database_library() -> None:
    """sqlite3 only in storage/sqlite (and schema.py, its migrations), psycopg only in
    storage/postgres: one module family per database library."""
    for module, imported in graph().items():
        libraries = {m.split(".")[0] for m, _ in imported} & {"sqlite3", "psycopg"}
        if "psycopg" in libraries:
            assert under(module, {"aggregator.storage.postgres"}), module
        if "sqlite3" in libraries:
            assert under(module, {"aggregator.storage.sqlite", "aggregator.storage.schema"}), module
        if under(module, {"aggregator.storage.postgres"}):
            assert not {m for m, _ in imported if under(m, {"aggregator.storage.sqlite"})}
        if under(module, {"aggregator.storage.sqlite"}):
            assert not {m for m, _ in imported if under(m, {"aggregator.storage.postgres"})}


def test_the_scheduler_cli_and_web_use_the_facade_not_storage_or_parts() -> None:
    imports_of = graph()  # parsed once, not once per module
    users = {"aggregator.scheduler", "aggregator.cli", "aggregator.web"}
    modules = [m for m in imports_of if under(m, users)]
    assert "aggregator.cli.feeds" in modules  # the CLI's package is read whole
    assert "aggregator.web.server" in modules
    for module in modules:
        imported = {m for m, _ in imports_of[module]}
        assert not {f"aggregator.{p}" for p in PARTS} & imported, module
        # The daemon's lock lives beside storage; the records it reports are storage's.
        assert not {m for m in imported if m == "aggregator.storage.sqlite"}, module


def test_the_stages_below_do_not_import_the_parts_or_anything_above() -> None:
    above = ABOVE_PARTS | {f"aggregator.{p}" for p in PARTS}
    for module, imported in graph().items():
        if module.startswith(
            ("aggregator.sources", "aggregator.dedup", "aggregator.digest", "aggregator.notify")
        ) or (
            module.startswith("aggregator.storage")
            or under(module, {"aggregator.polling", "aggregator.config", "aggregator.types"})
        ):
            reaching_up = {m for m, _ in imported if under(m, above)}
            assert not reaching_up, f"{module} imports {reaching_up}"


def test_notify_is_a_stage_on_config_types_and_the_edges_it_sends_through() -> None:
    """notify (alert channels) uses the config, the types and errors, httpx through
    sources/http.py, and the digest's SMTP and text helpers; nothing else of ours."""
    allowed = {
        "aggregator.notify",
        "aggregator.clock",
        "aggregator.config",
        "aggregator.types",
        "aggregator.exceptions",
        "aggregator.sources.http",
        "aggregator.digest.email",
        "aggregator.digest.render",
    }
    modules = [m for m in graph().items() if under(m[0], {"aggregator.notify"})]
    assert {m for m, _ in modules} >= {"aggregator.notify", "aggregator.notify.shape"}
    for module, imported in modules:
        ours = {m for m, _ in imported if m == "aggregator" or m.startswith("aggregator.")}
        assert {m for m in ours if not under(m, allowed)} == set(), module
        assert "httpx" not in {m for m, _ in imported}, module


def test_the_web_server_is_beside_the_cli_and_imported_by_nothing_below() -> None:
    """Only the CLI (`serve`, `run --serve`) starts the server; the web package reads
    through the facade (core) and renders with digest's pages, never storage itself."""
    for module, imported in graph().items():
        reaching = {m for m, _ in imported if under(m, {"aggregator.web"})}
        if reaching and not under(module, {"aggregator.web", "aggregator.cli"}):
            raise AssertionError(f"{module} imports {reaching}")
        if under(module, {"aggregator.web"}):
            assert not {m for m, _ in imported if under(m, {"aggregator.storage"})}, module


def test_each_web_library_lives_in_one_module() -> None:
    homes: dict[str, set[str]] = {}
    for module, imported in graph().items():
        for name, _ in imported:
            root = name.split(".")[0]
            if root in ("starlette", "uvicorn", "prometheus_client"):
                homes.setdefault(root, set()).add(module)
    assert homes == {
        "starlette": {"aggregator.web.server"},
        "uvicorn": {"aggregator.web.server"},
        "prometheus_client": {"aggregator.web.metrics"},
    }
