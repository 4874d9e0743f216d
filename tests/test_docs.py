"""The docs keep up with the code: every setting and every CLI command is documented."""

from __future__ import annotations

import ast
from dataclasses import fields

from cli import COMMANDS, build_parser
from conftest import ROOT
from kb.settings import Settings

SETTINGS_DOC = (ROOT / "docs" / "settings.md").read_text()
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_variable_and_default():
    for f in fields(Settings):
        row = next((line for line in SETTINGS_DOC.splitlines() if f"`{f.metadata['env']}`" in line), None)
        assert row, f"{f.metadata['env']} missing from docs/settings.md"
        assert f"`{f.name}`" in row


def test_every_cli_command_is_documented():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name in COMMANDS:
        assert f"kb {name}" in SETTINGS_DOC or f"kb [--data DIR] {name}" in SETTINGS_DOC, name


def test_readme_has_the_two_commands():
    assert "make run" in README and "make test" in README
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_core_imports_neither_ingest_nor_web():
    """Imports point one way: ingest/ and web/ use kb/; only cli/ wires all three, from above."""
    for package, forbidden in (("kb", ("ingest", "web", "cli")), ("ingest", ("web", "cli")), ("web", ("cli",))):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                for name in names:
                    assert name.split(".")[0] not in forbidden, f"{path.relative_to(ROOT)} imports {name}"
