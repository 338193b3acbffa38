"""Parse an allowlist file's YAML into values plus the line numbers errors and rules cite.

Values come from yaml-rs (YAML 1.2 core schema, Rust): 100,000 entries parse in about half a
second, where PyYAML needs over ten. yaml-rs reports no positions, so the line of each entry of a
top-level list is found by a scan of the text that understands the block style allowlists are
written in; when the scan cannot account for every entry (flow style, odd indentation) the lines
come from PyYAML's composer instead, which is slower but exact. Lines of individual keys are
needed only to report errors, so they are computed lazily, also with PyYAML.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from typing import Any

import yaml
import yaml_rs

from mirror.policy.interface import Diagnostic

Path = tuple[str | int, ...]

_YAML_RS_POSITION = re.compile(r"line (\d+), column (\d+)")
# A top-level key (`packages:` at column 0), and the first block sequence item after one.
_TOP_LEVEL = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:(?=\s|$)", re.MULTILINE)



class YamlSyntaxError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic
        super().__init__(str(diagnostic))


@dataclass
class SourceDocument:
    """One parsed file: its value and a way to find the line of any part of it."""

    file: str
    text: str
    value: Any
    _item_lines: dict[str, list[int]]
    _node_lines: dict[Path, int] | None = field(default=None, repr=False)

    def scanned_lines(self, key: str) -> list[int] | None:
        """Lines of every entry of `key` when the fast scan found them all (else None)."""
        return self._item_lines.get(key)

    def item_line(self, key: str, index: int) -> int:
        """Line of entry `index` of the top-level list `key` (where its `-` stands)."""
        lines = self._item_lines.get(key)
        if lines is not None and index < len(lines):
            return lines[index]
        return self.line_of((key, index))

    def line_of(self, path: Path) -> int:
        """Line of the value at `path` (keys and list indexes); the nearest known parent if absent."""
        if self._node_lines is None:
            self._node_lines = _compose_lines(self.text)
        for end in range(len(path), -1, -1):
            line = self._node_lines.get(path[:end])
            if line is not None:
                return line
        return 1


def parse_document(file: str, text: str) -> SourceDocument:
    """Parse `text`; raise `YamlSyntaxError` with FILE:LINE for malformed YAML."""
    try:
        value = yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        raise YamlSyntaxError(_syntax_diagnostic(file, text, str(exc))) from None
    item_lines: dict[str, list[int]] = {}
    if isinstance(value, dict):
        item_lines = _scan_item_lines(text, value)
    return SourceDocument(file=file, text=text, value=value, _item_lines=item_lines)


def _syntax_diagnostic(file: str, text: str, message: str) -> Diagnostic:
    position = _YAML_RS_POSITION.search(message)
    if position is not None:
        line = int(position.group(1))
        reason = message.strip().splitlines()[-1].strip()
        hint = ""
        if re.search(r":\s*[>*&!|%@`]", text.splitlines()[line - 1] if line <= len(text.splitlines()) else ""):
            hint = " (quote values that start with >, *, &, !, |, % or @, e.g. versions: \">=1.0\")"
        return Diagnostic(file, line, f"YAML syntax error: {reason}{hint}")
    # yaml-rs gives no position for duplicate keys: let PyYAML's composer find the line.
    lines = _compose_lines(text)
    first = message.strip().splitlines()[0]
    return Diagnostic(file, lines.get(("__duplicate__",), 1), f"YAML error: {first}")


def _scan_item_lines(text: str, value: dict[str, Any]) -> dict[str, list[int]]:
    """Lines of the entries of each top-level list written in block style.

    Each top-level key's block is found first; inside it, entries are the `- ` lines at the
    indentation of the first one. A list whose entry count disagrees with the parsed value is left
    out (the caller then asks PyYAML), so a wrong guess never attaches a rule to the wrong line.
    The per-line test runs in C (`map`/`compress`): a Python loop over every line of a
    100,000-entry file cost a seventh of its load.
    """
    wanted = {key for key, item in value.items() if isinstance(item, list) and item}
    lines = text.split("\n")
    # Top-level keys stand in column 0: test only the lines that do not start with a space.
    flush_left = compress(count(), map(operator.not_, map(str.startswith, lines, repeat((" ", "\t", "#")))))
    keys = [(index, match.group(1)) for index in flush_left if (match := _TOP_LEVEL.match(lines[index]))]
    found: dict[str, list[int]] = {}
    for number, (first_line, key) in enumerate(keys):
        if key not in wanted or key in found:
            continue
        last_line = keys[number + 1][0] if number + 1 < len(keys) else len(lines)
        block = lines[first_line + 1:last_line]
        indent = next((len(line) - len(line.lstrip(" ")) for line in block if line.lstrip(" ").startswith("-")), None)
        if indent is None:
            continue
        item = " " * indent + "-"
        starts = (item + " ", item + "\t")
        offset = first_line + 2  # 1-based, and the block starts on the line after the key
        found[key] = list(compress(count(offset), map(str.startswith, block, repeat(starts))))
        if len(found[key]) != len(value[key]):  # entries whose dash ends the line (`-` then the mapping)
            found[key] = [offset + i for i, line in enumerate(block) if line.startswith(starts) or line.rstrip() == item]
    return {key: lines for key, lines in found.items() if len(lines) == len(value[key])}


def _compose_lines(text: str) -> dict[Path, int]:
    """Map every path in the document to its 1-based line, using PyYAML's composer."""
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader_class)
    except yaml.YAMLError:
        return {}
    lines: dict[Path, int] = {}

    def walk(node: yaml.Node, path: Path) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen and ("__duplicate__",) not in lines:
                    lines[("__duplicate__",)] = key_node.start_mark.line + 1
                seen.add(key)
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
                lines[path + (key,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    if root is not None:
        walk(root, ())
    return lines
