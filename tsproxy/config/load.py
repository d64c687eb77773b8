"""Reading a configuration directory: the static configuration (tsproxy.yaml, or Traefik's
traefik.yml / traefik.yaml / traefik.toml) plus every other *.yaml/*.yml, the Kubernetes CRD
provider's resources; and the file provider's files the static configuration names.

The only module of tsproxy.config that touches the file system; ``load_files`` is the pure
part, given file names and texts.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Union

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.fileformat import is_dynamic_document, parse_dynamic_files
from tsproxy.config.fileformat_values import FileConfiguration
from tsproxy.config.kinds import parse_document
from tsproxy.config.providers import CRDProviderConfig, FileProviderConfig
from tsproxy.config.resources import Resource
from tsproxy.config.static import STATIC_FILE, STATIC_FILES, StaticConfig, parse_static
from tsproxy.config.yamlio import load_documents
from tsproxy.providers.crd import visible

__all__ = ["LoadedConfig", "load_directory", "load_files"]

_DYNAMIC_SUFFIXES = (".yaml", ".yml")
_FILE_PROVIDER_SUFFIXES = (".yaml", ".yml", ".toml")


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
    #: What the file provider read (None when it is not configured).
    file: Optional[FileConfiguration] = None
    #: What the key-value providers read, as (provider, configuration): ``etcd``, ``redis``
    #: (filled in by the running proxy from its watchers, tsproxy.providers.kv).
    kv: tuple[tuple[str, FileConfiguration], ...] = ()
    #: The Ingress and IngressClass documents of the directory (kubernetesIngress).
    ingresses: tuple[Any, ...] = ()


def load_files(
    static_text: Optional[str],
    files: Sequence[tuple[str, str]],
    path: str = "",
    static_file: str = STATIC_FILE,
    dynamic: Sequence[tuple[str, str]] = (),
    read_file: Optional[Callable[[str], bytes]] = None,
) -> LoadedConfig:
    """Parse the static text (None: absent, read from ``static_file``), the Kubernetes CRD
    provider's files and the file provider's (``dynamic``), all given as (name, text) pairs.

    A resource defined twice (same kind, namespace and name) keeps its first definition; the
    second is an error.
    """
    static_path = os.path.join(path, static_file) if path else static_file
    static, static_errors, static_notices = parse_static(
        static_text, static_file, static_path, read_file
    )
    errors = list(static_errors)
    notices = list(static_notices)
    resources: list[Resource] = []
    seen: dict[tuple[str, str, str], Resource] = {}
    crd: Optional[CRDProviderConfig] = CRDProviderConfig()
    file_config: Optional[FileConfiguration] = None
    if static is not None:
        crd = static.providers.crd
        if static.providers.file is not None:
            file_config, file_errors, file_notices = parse_dynamic_files(dynamic, read_file)
            errors.extend(file_errors)
            notices.extend(file_notices)
    ingress = static.providers.ingress if static is not None else None
    if ingress is not None and ingress.api.endpoint:
        ingress = None  # its Ingresses come from the API server (the running proxy's watcher)
    ingresses: list[Any] = []
    crd_from_api = crd is not None and bool(crd.api.endpoint)
    if crd_from_api and files:
        assert crd is not None
        notices.append(
            f"{static_file}:1: providers.kubernetesCRD reads {crd.api.endpoint}: the"
            f" {len(files)} YAML files of the configuration directory are not read by it"
        )
    # Only the resources Ingresses need, when the CRD provider does not read the directory.
    core_only = (crd is None or crd_from_api) and ingress is not None
    if (crd is None or crd_from_api) and files and ingress is None:
        if crd is None:
            notices.append(
                f"{static_file}:1: providers has no kubernetesCRD: the {len(files)} YAML files"
                " of the configuration directory are not read"
            )
        files = ()
    for name, text in files:
        if name.endswith(".toml"):
            message = (
                "TOML files here are not read (this directory holds Kubernetes YAML):"
                " name it in providers.file of the static configuration"
            )
            errors.append(ConfigError(name, 1, "", message))
            continue
        documents, yaml_errors = load_documents(text, name)
        errors.extend(yaml_errors)
        for document in documents:
            if is_dynamic_document(document.data):
                message = (
                    "this is Traefik's dynamic configuration format (the file provider's):"
                    " name the file in providers.file of the static configuration"
                )
                errors.append(ConfigError(name, document.line, "", message))
                continue
            if ingress is not None and _is_ingress(document.data):
                ingresses.append(_ingress_document(document, name))
                continue
            parsed = parse_document(document, name)
            if core_only and parsed.resource is not None:
                if parsed.resource.meta.kind not in _CORE_KINDS:
                    continue  # only the kubernetesIngress provider reads this directory
            notices.extend(parsed.notices)
            if parsed.error is not None:
                errors.append(parsed.error)
            resource = parsed.resource
            if resource is None or (
                crd is not None and not core_only and not visible(resource, crd)
            ):
                continue
            meta = resource.meta
            first = seen.setdefault((meta.kind, meta.namespace, meta.name), resource)
            if first is not resource:
                message = f"defined twice, this one is ignored (first at {first.meta.location})"
                errors.append(meta.location.error(message))
                continue
            resources.append(resource)
    kv: tuple[tuple[str, FileConfiguration], ...] = ()
    if ingress is not None:
        from tsproxy.providers.ingress import INGRESS, ingress_configuration

        config, ingress_errors, ingress_notices = ingress_configuration(
            ingresses, resources, ingress
        )
        kv = ((INGRESS, config),)
        errors.extend(ingress_errors)
        notices.extend(ingress_notices)
    return LoadedConfig(
        static,
        tuple(resources),
        tuple(errors),
        tuple(notices),
        path,
        file=file_config,
        kv=kv,
        ingresses=tuple(ingresses),
    )


_CORE_KINDS = ("Service", "Endpoints", "EndpointSlice", "Secret", "Node")


def _is_ingress(data: object) -> bool:
    return (
        isinstance(data, dict)
        and data.get("apiVersion") == "networking.k8s.io/v1"
        and data.get("kind") in ("Ingress", "IngressClass")
    )


def _ingress_document(document: Any, name: str) -> Any:
    from tsproxy.providers.ingress import IngressDocument

    meta = document.data.get("metadata") or {}
    label = f"{document.data['kind']} {meta.get('namespace', 'default')}/{meta.get('name', '')}"
    return IngressDocument(document.data, Location(name, document.line, label))


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


def _shown(directory: str, full: str) -> str:
    """How errors name a file: relative to the configuration directory when inside it."""
    relative = os.path.relpath(full, directory)
    return full if relative.startswith("..") else relative


def file_provider_paths(directory: str, config: FileProviderConfig) -> tuple[str, ...]:
    """The files the file provider reads: its ``filename``, or every YAML and TOML file under
    its ``directory`` (recursively, hidden ones left out), sorted. Relative paths are taken
    from the configuration directory; OSError when the directory cannot be listed."""
    if config.filename:
        return (os.path.join(directory, config.filename),)
    root = os.path.join(directory, config.directory)
    if not os.path.isdir(root):
        raise FileNotFoundError(2, "no such directory", root)
    found = []
    for parent, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in names:
            if name.endswith(_FILE_PROVIDER_SUFFIXES) and not name.startswith("."):
                found.append(os.path.join(parent, name))
    return tuple(sorted(found))


def _read_file_provider(
    directory: str, config: FileProviderConfig
) -> tuple[list[tuple[str, str]], set[str], list[ConfigError]]:
    """(name, text) of every file the file provider reads, the names of the configuration
    directory it claims (the CRD provider leaves those alone) and read errors."""
    location = config.location
    try:
        paths = file_provider_paths(directory, config)
    except OSError as exc:
        target = config.filename or config.directory
        message = f"cannot read {target}: {exc.strerror or exc}"
        return [], set(), [location.error(message)]
    files: list[tuple[str, str]] = []
    claimed: set[str] = set()
    errors: list[ConfigError] = []
    for full in paths:
        shown = _shown(directory, full)
        if os.path.dirname(os.path.abspath(full)) == os.path.abspath(directory):
            if os.path.basename(full) in STATIC_FILES:
                continue  # the static configuration is not dynamic configuration
            claimed.add(os.path.basename(full))
        text = _read_text(os.path.dirname(full), os.path.basename(full))
        if isinstance(text, ConfigError):
            if not os.path.exists(full) and config.filename:
                errors.append(location.error(f"cannot read {config.filename}: no such file"))
            else:
                errors.append(attrs.evolve(text, file=shown))
        else:
            files.append((shown, text))
    return files, claimed, errors


def load_directory(path: str) -> LoadedConfig:
    """Read ``path``: the static file (the first of tsproxy.yaml, traefik.yml, traefik.yaml,
    traefik.toml found) and the other YAML files, sorted by name, not recursive; then the
    files the file provider names.

    Hidden files (editor droppings like ``.#routes.yaml``) are left out. Problems reading a
    file are located errors like any other.
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        error = ConfigError(path, 1, "", f"cannot read directory: {exc.strerror or exc}")
        return LoadedConfig(None, (), (error,), (), path)
    statics = [n for n in STATIC_FILES if n in names and os.path.isfile(os.path.join(path, n))]
    static_file = statics[0] if statics else STATIC_FILE
    read_errors: list[ConfigError] = []
    for other in statics[1:]:
        message = f"a second static configuration file: {static_file} is the one read"
        read_errors.append(ConfigError(other, 1, "", message))
    texts: dict[str, str] = {}
    for name in names:
        if name in STATIC_FILES and name != static_file:
            continue
        wanted = name == static_file or name.endswith(_FILE_PROVIDER_SUFFIXES)
        if not wanted or name.startswith(".") or not os.path.isfile(os.path.join(path, name)):
            continue
        text = _read_text(path, name)
        if isinstance(text, ConfigError):
            read_errors.append(text)
        else:
            texts[name] = text
    static_text = texts.pop(static_file, None)
    dynamic: list[tuple[str, str]] = []

    def read_file(name: str) -> bytes:
        with open(os.path.join(path, name), "rb") as stream:
            return stream.read()

    if static_text is not None:
        static, _, _ = parse_static(static_text, static_file, read_file=read_file)
        if static is not None and static.providers.file is not None:
            dynamic, claimed, file_errors = _read_file_provider(path, static.providers.file)
            read_errors.extend(file_errors)
            texts = {name: text for name, text in texts.items() if name not in claimed}

    loaded = load_files(static_text, sorted(texts.items()), path, static_file, dynamic, read_file)
    if not read_errors:
        return loaded
    later = loaded.errors
    if any(error.file == static_file for error in read_errors):
        # The read error says it all; drop the "file not found" that followed from it.
        later = tuple(error for error in later if error.file != static_file)
    return attrs.evolve(loaded, errors=tuple(read_errors) + later)
