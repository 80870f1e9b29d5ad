"""``--config FILE``: option defaults from a TOML file, read with the standard library.

Top-level keys apply to every command that has that option; a ``[command]`` table applies to
one command only and wins over the top level::

    jobs = 4
    rate_limit = "500k"

    [download]
    retries = 20

Keys are option names with ``-`` or ``_`` (``rate-limit`` or ``rate_limit``). An unknown key is
an error, so a typo does not silently do nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["load_config"]


def load_config(path: Path, commands: Mapping[str, frozenset[str]]) -> dict[str, dict[str, Any]]:
    """Read ``path`` into a click ``default_map``: ``{command: {parameter: value}}``.

    ``commands`` maps each command name to the parameter names it accepts.
    """
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, "not UTF-8 text") from exc

    default_map: dict[str, dict[str, Any]] = {name: {} for name in commands}
    tables = {k: v for k, v in document.items() if isinstance(v, dict)}
    for key, value in document.items():
        if key in tables:
            continue
        name = key.replace("-", "_")
        targets = [cmd for cmd, params in commands.items() if name in params]
        if not targets:
            raise ConfigError(path, key, "no command has this option")
        for cmd in targets:
            default_map[cmd][name] = value
    for table, values in tables.items():
        if table not in commands:
            raise ConfigError(path, f"[{table}]", "no such command")
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in commands[table]:
                raise ConfigError(path, f"{table}.{key}", f"'archiver {table}' has no such option")
            default_map[table][name] = value
    return default_map
