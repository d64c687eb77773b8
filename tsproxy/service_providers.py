"""ProxyService's providers beyond the configuration directory: the file provider's own
watcher, the key-value stores (etcd, Redis) and the Kubernetes API watchers, and merging what
they last read into a loaded configuration. A mixin of ProxyService (tsproxy/service.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import attrs

from tsproxy.config.load import LoadedConfig
from tsproxy.logs import get_logger
from tsproxy.providers.kv import parse_kv
from tsproxy.watch import ConfigWatcher, watch_directory

log = get_logger(__name__)


class ServiceProviders:
    """The provider watchers of a ProxyService."""

    # Set by ProxyService (tsproxy/service.py).
    reactor: Any
    clock: Any
    config_dir: str
    watch: bool
    file_watcher: Optional[ConfigWatcher]
    kv_watchers: List[Any]
    kv_pairs: Dict[str, Dict[str, str]]
    kube_watchers: Dict[str, Any]
    kube_objects: Dict[str, List[Dict[str, Any]]]

    if TYPE_CHECKING:

        def reload_soon(self, force: bool = False) -> None: ...

    def _with_kv(self, loaded: LoadedConfig) -> LoadedConfig:
        """``loaded`` with the configurations the key-value providers last read (in the
        reactor thread, which owns them); a key that does not parse is an error at its key."""
        if loaded.static is None:
            return loaded
        if self.kube_watchers:
            loaded = self._with_kube(loaded)
        assert loaded.static is not None  # kept by _with_kube
        if not loaded.static.providers.kv:
            return loaded
        kv = list(loaded.kv)
        errors = list(loaded.errors)
        notices = list(loaded.notices)
        for config in loaded.static.providers.kv:
            pairs = self.kv_pairs.get(config.kind)
            if pairs is None:
                continue
            parsed, parse_errors, parse_notices = parse_kv(pairs, config.root_key, config.kind)
            kv.append((config.kind, parsed))
            errors += parse_errors
            notices += parse_notices
        return attrs.evolve(loaded, kv=tuple(kv), errors=tuple(errors), notices=tuple(notices))

    def _with_kube(self, loaded: LoadedConfig) -> LoadedConfig:
        """``loaded`` with the objects the Kubernetes API watchers last saw in place of the
        configuration directory's (nothing until every kind has been listed once)."""
        from tsproxy.providers.kubeobjects import api_resources, with_api_ingress

        static = loaded.static
        assert static is not None
        if "kubernetescrd" in self.kube_watchers and static.providers.crd is not None:
            objects = self.kube_objects.get("kubernetescrd", [])
            resources, errors, notices = api_resources(objects, static.providers.crd)
            loaded = attrs.evolve(
                loaded,
                resources=resources,
                errors=loaded.errors + errors,
                notices=loaded.notices + notices,
            )
        if "kubernetes" in self.kube_watchers and static.providers.ingress is not None:
            objects = self.kube_objects.get("kubernetes", [])
            loaded = with_api_ingress(loaded, objects, static.providers.ingress)
        return loaded

    def _kube_changed(self, provider: str, objects: List[Dict[str, Any]]) -> None:
        self.kube_objects[provider] = objects
        self.reload_soon()

    def _watch_kube(self, static: Any) -> None:
        from tsproxy.providers.kubeapi import CRD_KINDS, INGRESS_KINDS, KubeWatcher, kube_connection

        for provider, config, kinds in (
            ("kubernetescrd", static.providers.crd, CRD_KINDS),
            ("kubernetes", static.providers.ingress, INGRESS_KINDS),
        ):
            if config is None:
                continue
            api = config.api
            path = api.cert_auth_file_path
            if path and not os.path.isabs(path):
                path = os.path.join(self.config_dir, path)
            connection = kube_connection(api.endpoint, api.token, path)
            if connection is None:
                continue
            watcher = KubeWatcher(
                provider, connection, kinds, config.namespaces, self.reactor, self._kube_changed
            )
            self.kube_watchers[provider] = watcher
            log.info(
                "{provider}: reading {endpoint}", provider=provider, endpoint=connection.endpoint
            )
            watcher.start()

    def _kv_changed(self, provider: str, pairs: Dict[str, str]) -> None:
        """A key-value provider read a new tree: reload (throttled like the file watchers)."""
        self.kv_pairs[provider] = pairs
        log.info("{provider}: {count} keys read", provider=provider, count=len(pairs))
        self.reload_soon()

    def _watch_kv(self, static: Any) -> None:
        from tsproxy.providers.etcd import EtcdWatcher
        from tsproxy.providers.redis_watch import RedisWatcher

        kinds = {"etcd": EtcdWatcher, "redis": RedisWatcher}
        for config in static.providers.kv:
            watcher = kinds[config.kind](
                config, self.reactor, self._kv_changed, base_dir=self.config_dir
            )
            self.kv_watchers.append(watcher)
            watcher.start()

    def _watch_file_provider(self, static: Any) -> None:
        """Reload when the file provider's files change (``watch``, Traefik's default on);
        its directory, or the directory holding its ``filename``."""
        config = static.providers.file
        if config is None or not config.watch:
            return
        target = os.path.join(self.config_dir, config.directory or config.filename)
        if config.filename:
            target = os.path.dirname(target) or self.config_dir
        if self.watch and os.path.abspath(target) == os.path.abspath(self.config_dir):
            return  # the directory watcher sees these files already
        if not os.path.isdir(target):
            log.warn("providers.file: {path} is not a directory, not watched", path=target)
            return
        self.file_watcher = watch_directory(self.reactor, self.clock, target, self.reload_soon)
        self.file_watcher.start()
