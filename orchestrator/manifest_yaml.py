"""A manifest's text and YAML, and how its messages name places and quote values.

`read_text` reads a file of bounded size or says in plain words why it cannot (a manifest is
at most `MAX_MANIFEST_BYTES`, a list of ids `MAX_LIST_FILE_BYTES`: a larger file is refused
before it is parsed, in milliseconds and without holding it in memory); `parse_yaml` parses
it with a safe loader that refuses duplicate keys (which PyYAML's `safe_load` would silently
collapse) and reports syntax errors with their line and column, and finds the line of every
field path. `format_path` spells a field path as a user writes it (`sweeps[1].models[2]`),
`line_of` finds its line, and `show` quotes a user's value briefly, never anything that
looks like a key. Used by `manifest` and `manifest_fields`.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ManifestError

# How much of a user's value an error message may quote: enough to recognise it, never a
# whole pasted secret or a 10,000-character line.
MAX_SHOWN_VALUE = 60
MAX_MANIFEST_BYTES = 1 << 20
"""1 MiB: tens of thousands of project ids listed inline; longer lists belong in a
`projects_file`. (PyYAML's parser is slow: a manifest of 0.5 MiB listing 40,000 ids inline
takes 0.8 s to load on the benchmark machine; one of 57 MiB took minutes and 2.7 GB.)"""
MAX_LIST_FILE_BYTES = 32 << 20
"""32 MiB: a `projects_file` (or any list of one entry per line) of some 2.5 million ids."""

FieldPath = tuple[str | int, ...]


def show(value: object) -> str:
    """A value as an error message may quote it: short, and never anything like a key."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str) and re.search(r"yk_|bearer\s", value, re.IGNORECASE):
        return "a value that looks like an API key (not shown)"
    text = repr(value)
    if len(text) > MAX_SHOWN_VALUE:
        text = text[: MAX_SHOWN_VALUE - 1] + "…"
    return text


def read_text(path: Path, *, limit: int, what: str = "file") -> str:
    """The text of a file of at most `limit` bytes, or ValueError saying in plain words why
    it cannot be read (`what` names the limit's kind in the message)."""
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device could block or never end
            raise ValueError(f"{path} is not a regular file")
        if status.st_size > limit:
            raise ValueError(_too_large(path, status.st_size, limit, what))
        with path.open("rb") as f:
            data = f.read(limit + 1)  # the file may have grown since
        if len(data) > limit:
            raise ValueError(_too_large(path, len(data), limit, what))
        return data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"{path}: not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _too_large(path: Path, size: int, limit: int, what: str) -> str:
    return (
        f"{path} is {_size(size)}: larger than a {what} may be ({_size(limit)}); "
        'see README, "The manifest"'
    )


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


class _DuplicateKeyError(Exception):
    def __init__(self, path: FieldPath, key: object, first_line: int, line: int) -> None:
        super().__init__(key)
        self.path, self.key, self.first_line, self.line = path, key, first_line, line


class _ManifestLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that raises `_DuplicateKeyError` instead of keeping the last value."""

    node_paths: dict[int, FieldPath]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden by the keys next to it
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    path = self.node_paths.get(id(node), ())
                    raise _DuplicateKeyError(path, key, seen[key], line)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
        return super().construct_mapping(node, deep=deep)


def _field_lines(root: yaml.Node) -> tuple[dict[FieldPath, int], dict[int, FieldPath]]:
    """The 1-based line of every field path, and the path of every mapping node."""
    lines: dict[FieldPath, int] = {(): root.start_mark.line + 1}
    node_paths: dict[int, FieldPath] = {}
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, FieldPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:  # an alias: already walked under its anchor's path
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, FieldPath, int]] = []
        if isinstance(node, yaml.MappingNode):
            node_paths[id(node)] = path
            children = [
                (value, (*path, key.value), key.start_mark.line + 1)
                for key, value in node.value
                if isinstance(key, yaml.ScalarNode)
            ]
        elif isinstance(node, yaml.SequenceNode):
            children = [
                (item, (*path, index), item.start_mark.line + 1)
                for index, item in enumerate(node.value)
            ]
        for _, child_path, line in children:
            lines.setdefault(child_path, line)
        # Reversed, so nodes are walked in document order and an anchor before its aliases.
        stack.extend((child, child_path) for child, child_path, _ in reversed(children))
    return lines, node_paths


def parse_yaml(path: Path, text: str) -> tuple[object, dict[FieldPath, int]]:
    loader = _ManifestLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        lines, loader.node_paths = _field_lines(root)
        return loader.construct_document(root), lines
    except _DuplicateKeyError as dup:
        where = format_path((*dup.path, str(dup.key)))
        raise ManifestError(
            f"{path}: {where} (line {dup.line}): duplicate key {show(dup.key)}, "
            f"first given on line {dup.first_line}; give each key once"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        if len(problem) > 2 * MAX_SHOWN_VALUE:
            problem = problem[: 2 * MAX_SHOWN_VALUE - 1] + "…"
        # PyYAML notices a problem where it stops making sense, often a line after the
        # mistake; `context` names the construct that was open, and where it began.
        if exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            problem += f" ({exc.context}, which started on line {exc.context_mark.line + 1})"
        raise ManifestError(f"{path}: {where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        problem = str(exc).splitlines()[0][: 2 * MAX_SHOWN_VALUE]
        raise ManifestError(f"{path}: not valid YAML: {problem}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ManifestError(f"{path}: not a manifest: collections nested too deeply") from None
    finally:
        loader.dispose()


def format_path(loc: Sequence[str | int]) -> str:
    """`('sweeps', 1, 'models', 2)` -> `sweeps[1].models[2]`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def line_of(loc: FieldPath, lines: Mapping[FieldPath, int]) -> int | None:
    """The line of `loc`, or of its nearest ancestor that appears in the file."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
