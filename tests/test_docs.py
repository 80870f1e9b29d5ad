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


def _examples() -> list[tuple[str, str]]:
    """Every ``archiver COMMAND ...`` written in a code block of the README and docs/."""
    found = []
    for path in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
        for block in blocks:
            for line in block.splitlines():
                match = re.search(r"(?:^|[\s/])archiver\s+(.*)$", line)
                if match and not line.lstrip().startswith("#"):
                    found.append((path.name, match.group(1).split(" #")[0].strip()))
    return found


def _options(command: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
    return names


@pytest.mark.parametrize(("doc", "example"), _examples())
def test_every_example_uses_real_commands_and_options(doc: str, example: str) -> None:
    words = [w for w in example.split() if w not in ("\\", "|")]
    globals_ = _options(cli)
    while words and words[0] in globals_:
        words.pop(0)
    if not words or words[0].startswith(("-", "[", "…", "(")):
        return  # "archiver --help", a usage line's option list
    name = words[0]
    assert name in cli.commands, f"{doc}: 'archiver {name}' is not a command"
    known = _options(cli.commands[name]) | globals_
    for word in words[1:]:
        if word.startswith("-") and not word.startswith("--retired-before="):
            option = word.split("=", 1)[0].strip("[]")
            assert option in known, f"{doc}: 'archiver {name}' has no option {option}"


def test_examples_were_found() -> None:
    commands = {example.split()[0] for _, example in _examples() if example}
    assert {"sync", "download", "package", "verify", "status", "prune", "manifest"} <= commands
