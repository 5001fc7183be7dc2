"""Reading a YAML file that people edit by hand, so that every problem can name its file and line.

Shared by the FAQ content, the canned replies and the console's interface strings, so every
editor-owned file reports problems the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import yaml


@dataclass(frozen=True)
class ContentError:
    """One problem in an editor's file, located for the editor."""

    file: Path
    line: int
    entry: Optional[str]
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: entry {self.entry}: {self.reason}" if self.entry else f"{where}: {self.reason}"


class ContentInvalid(ValueError):
    """The file has errors; `errors` lists every one found."""

    def __init__(self, errors: List[ContentError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


def read(path: Path) -> Tuple[Any, yaml.Node]:
    """The parsed data of `path` and its node tree (for line numbers).

    Raises `ContentInvalid` when the file is missing, not UTF-8 or not valid YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise ContentInvalid([ContentError(path, 0, None, "file not found")]) from None
    except UnicodeDecodeError as error:
        raise ContentInvalid([ContentError(path, 1, None, f"not UTF-8 text ({error.reason})")]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        raise ContentInvalid([ContentError(path, line, None, f"not valid YAML: {error.problem or error}")]) from None
    return data, root


def child(node: yaml.Node | None, key: Any) -> yaml.Node | None:
    """The node under `key` (a mapping key or a list index) of `node`, or None."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def line_of(node: yaml.Node | None, *keys: Any) -> int:
    """The line (1-based) of the deepest node found along `keys` from `node`."""
    if node is None:
        return 1
    for key in keys:
        found = child(node, key)
        if found is None:
            break
        node = found
    return node.start_mark.line + 1


class Problems:
    """Collects located problems in one file; `raise_if_any` turns them into `ContentInvalid`."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path, self.root = path, root
        self.errors: List[ContentError] = []

    def add(self, reason: str, *keys: Any, entry: str | None = None) -> None:
        self.errors.append(ContentError(self.path, line_of(self.root, *keys), entry, reason))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ContentInvalid(self.errors)
