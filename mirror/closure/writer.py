"""Adding entries to an allowlist file the way a reviewer would: at the end of its list, in the
file's own indentation, every comment, key order and blank line left as it was.

The new text is validated as the service would load it before anything is written, and written
whole (temporary file, then rename): an edit that would not load changes nothing.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

_TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\s*:")


@dataclass(frozen=True)
class NewEntry:
    fields: dict[str, object]
    """Key -> value in the order written (`name`/`spec`, `versions`, `environments`, `reason`, `owner`)."""


class EditError(Exception):
    """The file cannot be edited (or the edit would not load); nothing was written."""


def render_entry(entry: NewEntry, dash_indent: int) -> list[str]:
    lines = []
    for number, (key, value) in enumerate(entry.fields.items()):
        prefix = " " * dash_indent + ("- " if number == 0 else "  ")
        lines.append(f"{prefix}{key}: {_scalar(value)}")
    return lines


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    text = str(value)
    if re.match(r"^[A-Za-z0-9][A-Za-z0-9 ._/()+-]*$", text) and text.strip() == text and ": " not in text:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def appended(text: str, list_key: str, entries: list[NewEntry]) -> str:
    """`text` with `entries` added at the end of its top-level `list_key:` list."""
    if not entries:
        return text
    document = YAML().load(text) or {}
    lines = text.splitlines()
    sequence = document.get(list_key) if hasattr(document, "get") else None
    if sequence is None:
        block = [f"{list_key}:"] + [line for entry in entries for line in render_entry(entry, 2)]
        return "\n".join(lines).rstrip("\n") + "\n" + "\n".join(block) + "\n"
    if not hasattr(sequence, "lc") or getattr(sequence.fa, "_flow_style", False) or not len(sequence):
        raise EditError(
            f"'{list_key}:' is not a block list ({list_key}: [] or flow style): write it as '{list_key}:' "
            "followed by '- ' items, then run again"
        )
    item_line, item_column = sequence.lc.item(0)
    dash_indent = (
        max(0, item_column - 2)
        if lines[item_line][item_column - 2 : item_column] == "- "
        else _dash_indent(lines[item_line])
    )
    key_line = document.lc.key(list_key)[0]
    end = len(lines)
    for number in range(key_line + 1, len(lines)):
        if _TOP_LEVEL_KEY.match(lines[number]):
            end = number
            break
    while end > key_line + 1 and (
        not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#") and _indent(lines[end - 1]) == 0
    ):
        end -= 1  # blank lines and column-0 comments before the next key belong to it
    new = [line for entry in entries for line in render_entry(entry, dash_indent)]
    return "\n".join(lines[:end] + new + lines[end:]) + "\n"


def _dash_indent(line: str) -> int:
    return len(line) - len(line.lstrip(" -")) if "-" in line else _indent(line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def diff(path: Path, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"))


def write_whole(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.chmod(temporary, path.stat().st_mode & 0o7777)
    temporary.replace(path)
