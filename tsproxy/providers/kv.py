"""Key-value store providers (etcd, Redis): their key tree as Traefik's dynamic configuration.

Traefik's KV layout is the dynamic configuration flattened: ``traefik/http/routers/r/rule``,
``traefik/http/routers/r/entryPoints/0``, ``traefik/http/services/s/loadBalancer/servers/0/url``.
This module folds the keys under the root key back into the nested structure the file
provider reads, and reads it with the same reader, so every section the file provider
supports is supported here, with the same errors.

Keys are case-insensitive, as in Traefik; values are text, read as the integer, boolean or
duration a field wants; a list is written ``.../0``, ``.../1``; an empty value is a present
option without fields (``.../tls`` = ``""`` turns TLS on). An error names the key:
``etcd:traefik/http/routers/r/priority: router r: http.routers.r.priority: must be an
integer``.

Pure: given the keys and values (as the watchers in tsproxy.providers.etcd and .redis read
them), no I/O.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from tsproxy.config.errors import ConfigError
from tsproxy.config.fileformat import parse_dynamic_tree
from tsproxy.config.fileformat_values import FileConfiguration
from tsproxy.config.yamlio import CaselessMap, KVText, YAMLList

__all__ = ["KVTree", "kv_tree", "parse_kv"]


class _Node:
    __slots__ = ("children", "key", "value")

    def __init__(self, key: str) -> None:
        self.key = key
        self.value: Optional[str] = None
        self.children: Dict[str, _Node] = {}  # lower-cased segment -> node


class KVTree:
    """The nested form of a key tree: ``data`` (None when no key is under the root) and the
    key path of every line number the reader will report (``paths[line - 1]``)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.paths: List[str] = []
        self.data: Optional[CaselessMap] = None

    def line(self, path: str) -> int:
        self.paths.append(path)
        return len(self.paths)

    def place(self, file: str, line: int) -> Tuple[str, int]:
        """Where line ``line`` of the tree is: the key path, no line."""
        if 0 < line <= len(self.paths):
            return f"{self.provider}:{self.paths[line - 1]}", 0
        return self.provider, 0


def kv_tree(pairs: Mapping[str, str], root_key: str, provider: str) -> KVTree:
    """Fold the keys under ``root_key`` into nested mappings and lists."""
    tree = KVTree(provider)
    root = _Node(root_key)
    prefix = root_key.rstrip("/") + "/"
    for key in sorted(pairs):
        if not key.startswith(prefix):
            continue
        node = root
        written = prefix.rstrip("/")
        for segment in key[len(prefix) :].split("/"):
            if not segment:
                continue
            written = f"{written}/{segment}"
            node = node.children.setdefault(segment.lower(), _Node(written))
            # The first spelling of a segment names it; a later one in another case is the
            # same key (Traefik's keys are case-insensitive).
        if node is not root:
            node.value = pairs[key]
    if root.children:
        data = _value(root, tree)
        assert isinstance(data, CaselessMap)
        tree.data = data
    return tree


def _segment(node: _Node) -> str:
    return node.key.rpartition("/")[2]


def _value(node: _Node, tree: KVTree) -> object:
    line = tree.line(node.key)
    if not node.children:
        # An empty value is an option present without fields (tls, a middleware kind).
        return KVText(node.value) if node.value else None
    children = list(node.children.values())
    if all(_segment(child).isdigit() for child in children):
        items = YAMLList()
        items.line = line
        items.item_lines = []
        for child in sorted(children, key=lambda c: int(_segment(c))):
            items.item_lines.append(len(tree.paths) + 1)
            items.append(_value(child, tree))
        return items
    mapping = CaselessMap.empty(line)
    for child in children:
        child_line = len(tree.paths) + 1
        mapping.put(_segment(child), _value(child, tree), child_line)
    return mapping


def parse_kv(
    pairs: Mapping[str, str], root_key: str, provider: str
) -> Tuple[FileConfiguration, Tuple[ConfigError, ...], Tuple[str, ...]]:
    """The configuration the keys under ``root_key`` hold, its errors (each at its key) and
    notices. No key under the root: an empty configuration, as Traefik's."""
    tree = kv_tree(pairs, root_key, provider)
    if tree.data is None:
        return FileConfiguration(), (), ()
    return parse_dynamic_tree(tree.data, provider, tree.place)
