"""Settings files people edit (severities.yml, approvals.yml): errors as `file:line: where: what`,
the way `icbot playbooks validate` reports a playbook's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.core.errors import ConfigError


def read(path: Path) -> tuple[Any, yaml.Node | None]:
    """The file's data and its YAML node tree (for line numbers). Raises FileNotFoundError, and
    ConfigError (`file:line: invalid YAML: …`) for text that is not YAML."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc


def line(root: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the node at `loc` (or of its nearest existing parent)."""
    node = root
    found = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
        found = node.start_mark.line + 1
    return found


def where(path: Path, root: yaml.Node | None, loc: Sequence[int | str]) -> str:
    """`file:line: a.b.c` for the node at `loc`."""
    return f"{path}:{line(root, loc)}: {'.'.join(str(p) for p in loc) or '(file)'}"


def problems(path: Path, root: yaml.Node | None, exc: ValidationError) -> str:
    """Pydantic's errors, one `file:line: where: what` a line."""
    return "\n".join(
        f"{where(path, root, [p for p in err['loc'] if isinstance(p, int | str)])}:"
        f" {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )
