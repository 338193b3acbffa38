"""Parse an allowlist file's YAML into values plus the line numbers errors and rules cite.

Values come from yaml-rs (YAML 1.2 core schema, Rust): 100,000 entries parse in about half a
second, where PyYAML needs over ten. yaml-rs reports no positions, so the line of each entry of a
top-level list is found by a scan of the text that understands the block style allowlists are
written in; when the scan cannot account for every entry (flow style, odd indentation) the lines
come from PyYAML's composer instead, which is slower but exact. Lines of individual keys are
needed only to report errors, so they are computed lazily, also with PyYAML. A file over a
megabyte has its biggest list parsed in parts on parallel threads (`_parse_in_parts`).
"""

from __future__ import annotations

import operator
import os
import re
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from typing import Any

import yaml_rs

from mirror.policy.interface import Diagnostic

Path = tuple[str | int, ...]

_YAML_RS_POSITION = re.compile(r"line (\d+), column (\d+)")
# A top-level key (`packages:` at column 0), and the first block sequence item after one.
_TOP_LEVEL = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:(?=\s|$)", re.MULTILINE)
# Files this long have their biggest list parsed in `_PARTS` parts on parallel threads.
_PARTS_MIN_CHARS = 1 << 20
_PARTS = 4
# What a part parsed on its own would not see: directives and document markers.
_DOCUMENT_MARKUP = re.compile(r"\n(?:%|---|\.\.\.)")
# The same top-level key as `_TOP_LEVEL`, found after a newline (a literal prefix: fast to search).
_TOP_LEVEL_AFTER_NEWLINE = re.compile(r"\n([A-Za-z_][\w-]*)[ \t]*:(?=\s|$)")
# A block sequence entry's line: its indentation, then `- `.
_ITEM_LINE = re.compile(r"\n([ ]*)-[ \t]")


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
    parted = _parse_in_parts(text) if len(text) >= _PARTS_MIN_CHARS else None
    if parted is not None:
        value, item_lines = parted
        return SourceDocument(file=file, text=text, value=value, _item_lines=item_lines)
    try:
        value = yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        raise YamlSyntaxError(_syntax_diagnostic(file, text, str(exc))) from None
    item_lines: dict[str, list[int]] = {}
    if isinstance(value, dict):
        lines = text.split("\n")
        item_lines = _matching_counts(_scan_item_lines(lines, _top_level_keys(lines)), value)
    return SourceDocument(file=file, text=text, value=value, _item_lines=item_lines)


def _parse_in_parts(text: str) -> tuple[dict[str, Any], dict[str, list[int]]] | None:
    """Parse a long file's biggest top-level list in parts, on parallel threads.

    yaml-rs releases the GIL while it parses, so a 100,000-entry list cut into a few runs of
    whole entries parses in about half the time, and the scan for entry lines runs meanwhile. A
    cut falls only on a `- ` line at the list's item indentation, which in YAML always starts a
    new entry: block scalars end there, and a quoted scalar or flow collection that spans it
    leaves its part unterminated, which fails to parse. Any part that fails, any entry count that
    disagrees with the `- ` lines, and anything a part cannot see (directives, several documents,
    an anchor or tag on the list's key) returns None: the caller then parses the whole text,
    which also gives the authoritative error and line.
    """
    if text.startswith(("%", "---", "...")) or _DOCUMENT_MARKUP.search(text):
        return None
    keys = [(match.start(1) - 1, match.group(1)) for match in _TOP_LEVEL_AFTER_NEWLINE.finditer("\n" + text)]
    blocks = [
        (begin, keys[number + 1][0] if number + 1 < len(keys) else len(text), key)
        for number, (begin, key) in enumerate(keys)
    ]
    if not blocks:
        return None
    begin, end, key = max(blocks, key=lambda block: block[1] - block[0])
    key_line_end = text.find("\n", begin, end)
    first_item = _ITEM_LINE.search(text, key_line_end, end) if key_line_end >= 0 else None
    if (
        first_item is None
        or text[begin:key_line_end].rstrip() != key + ":"
        or text[key_line_end : first_item.start()].strip(" \t\n")
    ):
        return None  # something on the key's line, or text that is not an entry before the first one
    item = "\n" + first_item.group(1) + "- "
    cuts = [first_item.start() + 1]
    for part in range(1, _PARTS):
        cut = text.find(item, max(cuts[-1], begin + (end - begin) * part // _PARTS), end)
        if cut >= 0:
            cuts.append(cut + 1)
    cuts.append(end)
    parts = [key + ":\n" + text[start:stop] for start, stop in zip(cuts, cuts[1:], strict=False)]
    skeleton = text[: cuts[0]] + text[end:]
    from concurrent.futures import (
        ThreadPoolExecutor,
    )  # only for files over 1 MB; with logging it costs a short command ~10 ms

    with ThreadPoolExecutor(max_workers=min(len(parts) + 1, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(_loads_or_none, part) for part in (skeleton, *parts)]
        lines = text.split("\n")  # meanwhile, on this thread
        item_lines = _scan_item_lines(lines, _top_level_keys(lines))
        value, *pieces = (future.result() for future in futures)
    if not isinstance(value, dict) or key not in value or value[key] is not None:
        return None
    items: list[Any] = []
    for piece, part in zip(pieces, parts, strict=True):
        entries = piece.get(key) if isinstance(piece, dict) else None
        if not isinstance(entries, list) or len(entries) != part.count(item):  # the part starts "key:\n- "
            return None
        items.extend(entries)
    value[key] = items
    return value, _matching_counts(item_lines, value)


def _loads_or_none(text: str) -> Any:
    try:
        return yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError:
        return None


def _syntax_diagnostic(file: str, text: str, message: str) -> Diagnostic:
    position = _YAML_RS_POSITION.search(message)
    if position is not None:
        line = int(position.group(1))
        reason = message.strip().splitlines()[-1].strip()
        hint = ""
        if re.search(r":\s*[>*&!|%@`]", text.splitlines()[line - 1] if line <= len(text.splitlines()) else ""):
            hint = ' (quote values that start with >, *, &, !, |, % or @, e.g. versions: ">=1.0")'
        return Diagnostic(file, line, f"YAML syntax error: {reason}{hint}")
    # yaml-rs gives no position for duplicate keys: let PyYAML's composer find the line.
    lines = _compose_lines(text)
    first = message.strip().splitlines()[0]
    return Diagnostic(file, lines.get(("__duplicate__",), 1), f"YAML error: {first}")


def _scan_item_lines(lines: list[str], keys: list[tuple[int, str]]) -> dict[str, list[int]]:
    """Lines of the entries of each top-level list written in block style.

    Each top-level key's block is found first; inside it, entries are the `- ` lines at the
    indentation of the first one, or (when there are none) lines that are only that `-`.
    """
    found: dict[str, list[int]] = {}
    for number, (first_line, key) in enumerate(keys):
        if key in found:
            continue
        last_line = keys[number + 1][0] if number + 1 < len(keys) else len(lines)
        item = _item_prefix(lines, first_line, last_line)
        if item is None:
            continue
        block = lines[first_line + 1 : last_line]
        starts = list(compress(count(first_line + 2), map(str.startswith, block, repeat((item + " ", item + "\t")))))
        if not starts:  # entries whose dash ends the line (`-` then the mapping)
            starts = [first_line + 2 + index for index, line in enumerate(block) if line.rstrip() == item]
        found[key] = starts
    return found


def _matching_counts(item_lines: dict[str, list[int]], value: dict[str, Any]) -> dict[str, list[int]]:
    """Keep the lists whose entry count agrees with the parsed value: a wrong guess never
    attaches a rule to the wrong line (the caller then asks PyYAML)."""
    return {
        key: lines
        for key, lines in item_lines.items()
        if isinstance(value.get(key), list) and len(value[key]) == len(lines)
    }


def _top_level_keys(lines: list[str]) -> list[tuple[int, str]]:
    """(line index, key) of every `key:` line in column 0.

    The per-line test runs in C (`map`/`compress`): a Python loop over every line of a
    100,000-entry file cost a seventh of its load.
    """
    flush_left = compress(count(), map(operator.not_, map(str.startswith, lines, repeat((" ", "\t", "#")))))
    return [(index, match.group(1)) for index in flush_left if (match := _TOP_LEVEL.match(lines[index]))]


def _item_prefix(lines: list[str], first: int, last: int) -> str | None:
    """The indentation plus `-` of the entries of the block between lines `first` and `last`."""
    for line in lines[first + 1 : last]:
        stripped = line.lstrip(" ")
        if stripped.startswith("-"):
            return " " * (len(line) - len(stripped)) + "-"
    return None


def _compose_lines(text: str) -> dict[Path, int]:
    """Map every path in the document to its 1-based line, using PyYAML's composer (imported
    here: only errors and unusual layouts need it, and it costs a short command ~15 ms)."""
    import yaml

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
