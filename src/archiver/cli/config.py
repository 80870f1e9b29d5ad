"""``--config FILE``: option defaults from a TOML file, read with the standard library.

Top-level keys apply to every command that has that option; a ``[command]`` table applies to
one command only and wins over the top level::

    jobs = 4
    rate_limit = "500k"

    [download]
    retries = 20

Keys are option names with ``-`` or ``_`` (``rate-limit`` or ``rate_limit``). An unknown key is
an error, so a typo does not silently do nothing. A value goes through the same checks as on
the command line: it is handed to the option as the text a user would type (``jobs = 4`` as
``--jobs 4``), so ``jobs = 1.5``, ``timeout = nan`` or ``retries = true`` are refused as
``--jobs 1.5`` would be; a flag takes ``true`` or ``false``, a repeatable option a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "load_config"]

# A config file of every option is a few hundred bytes: ``--config /dev/zero`` is not one.
MAX_CONFIG_BYTES = 256 * 1024


def load_config(
    path: Path, commands: Mapping[str, Mapping[str, click.Parameter]]
) -> dict[str, dict[str, Any]]:
    """Read ``path`` into a click ``default_map``: ``{command: {parameter: value}}``.

    ``commands`` maps each command name to its parameters by name.
    """
    import tomllib  # with --config only: not at every start (issue 14's poor line)

    from ..files import open_regular

    try:
        with open_regular(path) as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                path, None, f"larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config"
            )
        document = tomllib.loads(data.decode("utf-8"))
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
        found = {cmd: param for cmd, params in commands.items() if (param := _param(params, key))}
        if not found:
            raise ConfigError(path, key, "no command has this option")
        for cmd, param in found.items():
            default_map[cmd][str(param.name)] = _as_typed(param, value, path, key)
    for table, values in tables.items():
        if table not in commands:
            raise ConfigError(path, f"[{table}]", "no such command")
        for key, value in values.items():
            param = _param(commands[table], key)
            if param is None:
                raise ConfigError(path, f"{table}.{key}", f"'archiver {table}' has no such option")
            default_map[table][str(param.name)] = _as_typed(param, value, path, f"{table}.{key}")
    return default_map


def _param(params: Mapping[str, click.Parameter], key: str) -> click.Parameter | None:
    """The parameter a config key names: by the option as typed (``mirror`` for
    ``--mirror``) or by its name in the code (``mirrors``), ``-`` or ``_`` alike."""
    name = key.replace("-", "_")
    if name in params:
        return params[name]
    for param in params.values():
        if any(o.startswith("--") and o[2:].replace("-", "_") == name for o in param.opts):
            return param
    return None


def _as_typed(param: click.Parameter, value: Any, path: Path, key: str) -> Any:
    """``value`` as the command line would give it to ``param``: text for an option that takes
    a value, a boolean for a flag, a list of texts for a repeatable option.

    >>> _as_typed(click.Option(["--jobs"], type=int), 4, Path("c.toml"), "jobs")
    '4'
    >>> _as_typed(click.Option(["--jobs"], type=int), [4], Path("c.toml"), "jobs")
    Traceback (most recent call last):
    archiver.errors.ConfigError: c.toml: jobs: expected a number or text, got a list
    """
    if isinstance(param, click.Option) and (param.is_flag or param.count):
        if param.count and _scalar(value) and isinstance(value, int):
            return value
        if not param.count and isinstance(value, bool):
            return value
        expected = "a count" if param.count else "true or false"
        raise ConfigError(path, key, f"expected {expected}, got {_kind(value)}")
    if param.multiple:
        values = value if isinstance(value, list) else [value]
        if all(_scalar(v) for v in values):
            return [str(v) for v in values]
        raise ConfigError(path, key, "expected a list of texts")
    if _scalar(value):
        return str(value)
    raise ConfigError(path, key, f"expected a number or text, got {_kind(value)}")


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"
