"""Reading a configuration directory: tsproxy.yaml (static) plus every other *.yaml/*.yml.

The only module of tsproxy.config that touches the file system; ``load_files`` is the pure
part, given file names and texts.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import attrs

from tsproxy.config.errors import ConfigError
from tsproxy.config.kinds import parse_document
from tsproxy.config.resources import Resource
from tsproxy.config.static import STATIC_FILE, StaticConfig, parse_static
from tsproxy.config.yamlio import load_documents

__all__ = ["LoadedConfig", "load_directory", "load_files"]

_DYNAMIC_SUFFIXES = (".yaml", ".yml")


@attrs.frozen
class LoadedConfig:
    """Everything read from one directory.

    ``static`` is None when tsproxy.yaml is missing or wrong (then ``errors`` say why and the
    proxy cannot start). ``resources`` are in file order, then document order. ``notices`` are
    full ``file:line: ...`` strings about things skipped or not supported yet.
    """

    static: Optional[StaticConfig]
    resources: tuple[Resource, ...]
    errors: tuple[ConfigError, ...]
    notices: tuple[str, ...]
    path: str = ""


def load_files(
    static_text: Optional[str], files: Sequence[tuple[str, str]], path: str = ""
) -> LoadedConfig:
    """Parse the static text (None: absent) and dynamic files given as (name, text) pairs.

    A resource defined twice (same kind, namespace and name) keeps its first definition; the
    second is an error.
    """
    static_path = os.path.join(path, STATIC_FILE) if path else STATIC_FILE
    static, static_errors, static_notices = parse_static(static_text, STATIC_FILE, static_path)
    errors = list(static_errors)
    notices = list(static_notices)
    resources: list[Resource] = []
    seen: dict[tuple[str, str, str], Resource] = {}
    for name, text in files:
        documents, yaml_errors = load_documents(text, name)
        errors.extend(yaml_errors)
        for document in documents:
            parsed = parse_document(document, name)
            notices.extend(parsed.notices)
            if parsed.error is not None:
                errors.append(parsed.error)
            resource = parsed.resource
            if resource is None:
                continue
            meta = resource.meta
            first = seen.setdefault((meta.kind, meta.namespace, meta.name), resource)
            if first is not resource:
                message = f"defined twice, this one is ignored (first at {first.meta.location})"
                errors.append(meta.location.error(message))
                continue
            resources.append(resource)
    return LoadedConfig(static, tuple(resources), tuple(errors), tuple(notices), path)


def _read_text(directory: str, name: str) -> Union[str, ConfigError]:
    try:
        with open(os.path.join(directory, name), "rb") as stream:
            raw = stream.read()
    except OSError as exc:
        return ConfigError(name, 1, "", f"cannot read: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return ConfigError(name, line, "", f"not UTF-8 text (byte {exc.start})")


def load_directory(path: str) -> LoadedConfig:
    """Read ``path``: tsproxy.yaml and the other YAML files, sorted by name, not recursive.

    Hidden files (editor droppings like ``.#routes.yaml``) are left out. Problems reading a
    file are located errors like any other.
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        error = ConfigError(path, 1, "", f"cannot read directory: {exc.strerror or exc}")
        return LoadedConfig(None, (), (error,), (), path)
    read_errors: list[ConfigError] = []
    texts: dict[str, str] = {}
    for name in names:
        wanted = name == STATIC_FILE or name.endswith(_DYNAMIC_SUFFIXES)
        if not wanted or name.startswith(".") or not os.path.isfile(os.path.join(path, name)):
            continue
        text = _read_text(path, name)
        if isinstance(text, ConfigError):
            read_errors.append(text)
        else:
            texts[name] = text
    static_text = texts.pop(STATIC_FILE, None)
    loaded = load_files(static_text, sorted(texts.items()), path)
    if not read_errors:
        return loaded
    later = loaded.errors
    if any(error.file == STATIC_FILE for error in read_errors):
        # The read error says it all; drop the "file not found" that followed from it.
        later = tuple(error for error in later if error.file != STATIC_FILE)
    return attrs.evolve(loaded, errors=tuple(read_errors) + later)
