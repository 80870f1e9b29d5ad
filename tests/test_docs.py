"""The docs stay in step with the CLI: every command and option is documented and has help."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from archiver.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs"
CLI_DOC = (DOCS / "cli.md").read_text(encoding="utf-8")
GLOBAL_OPTIONS = {"--verbose", "--quiet", "--config", "--help", "--version"}


def _section(command: str) -> str:
    match = re.search(rf"^## `archiver {command}`$(.*?)(?=^## |\Z)", CLI_DOC, re.M | re.S)
    assert match, f"docs/cli.md has no '## `archiver {command}`' section"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_documented_with_its_options(name: str) -> None:
    section = _section(name)
    command = cli.commands[name]
    for param in command.params:
        if isinstance(param, click.Option):
            long_names = [o for o in param.opts if o.startswith("--")]
            for option in long_names:
                if option in GLOBAL_OPTIONS:
                    assert option in CLI_DOC
                else:
                    assert f"`{option}" in section or f", `{option}" in section, (
                        f"docs/cli.md: `archiver {name}` does not document {option}"
                    )


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_and_option_has_help(name: str) -> None:
    command = cli.commands[name]
    assert command.help, f"archiver {name} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"archiver {name} {param.opts[0]} has no help text"


def test_documented_commands_exist() -> None:
    documented = set(re.findall(r"^## `archiver (\w+)`$", CLI_DOC, re.M))
    assert documented == set(cli.commands)
