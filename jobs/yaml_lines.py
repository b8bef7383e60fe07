"""YAML with line numbers: which line each key of a document is on, for errors a person can act on."""
from __future__ import annotations

from typing import Any

import yaml


class LineTable:
    """Line numbers (1-based) of every mapping key and sequence item in a YAML document, by path."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        node = yaml.compose(text)
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = path + (str(key.value),)
                self.lines[here] = key.start_mark.line + 1
                self._walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                here = path + (str(i),)
                self.lines[here] = item.start_mark.line + 1
                self._walk(item, here)

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is in the file (a missing key's parent)."""
        parts = tuple(str(p) for p in path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None
