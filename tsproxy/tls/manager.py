"""The TLS manager: certificates and TLS options read from the resources, and per handshake
the Twisted connection creator that presents the right certificate with the right settings.

Built once per configuration (reload builds a new one). Contexts are made on first use and
kept, one per (certificate, option, ALPN mode); nothing here listens or routes.
"""

from __future__ import annotations

import datetime
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import attrs
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import (
    IngressRoute,
    IngressRouteTCP,
    ObjectRef,
    Resource,
    Secret,
    TLSOption,
    TLSStore,
)
from tsproxy.tls.certs import (
    Certificate,
    CertificateError,
    certificate_from_secret,
    generated_default_certificate,
)
from tsproxy.tls.options import (
    DEFAULT_SETTINGS,
    TLSSettings,
    make_context,
    option_name,
    settings_from_option,
)
from tsproxy.tls.store import CertificateStore

__all__ = ["PROVIDER", "ServerCreator", "TLSBuild", "TLSManager", "build_tls"]

#: Suffix Traefik gives every name from the Kubernetes CRD provider.
PROVIDER = "kubernetescrd"

OptionKey = Tuple[str, str]
#: Internal key of the ``default`` option (a real TLSOption key always has a namespace).
DEFAULT_KEY: OptionKey = ("", "default")


def _key(option: Optional[ObjectRef]) -> OptionKey:
    return DEFAULT_KEY if option is None else (option.namespace, option.name)


@implementer(IOpenSSLServerConnectionCreator)
@attrs.frozen(eq=False)
class ServerCreator:
    """Makes the server side of one TLS connection; what ``TLSMemoryBIOFactory`` takes.

    ``certificate`` is the one presented, ``option`` Traefik's name of the TLS option.
    """

    context: SSL.Context
    certificate: Certificate
    option: str

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self.context, None)


@attrs.define(eq=False)
class TLSManager:
    """Certificates and TLS options of one configuration.

    ``problems`` maps a TLS option key to why it cannot be used (Traefik's ``unknown TLS
    options`` or the option's build error); such an option refuses every handshake.
    """

    store: CertificateStore
    settings: Dict[OptionKey, TLSSettings]
    problems: Dict[OptionKey, str] = attrs.Factory(dict)
    _creators: Dict[Tuple[Certificate, OptionKey, bool], ServerCreator] = attrs.Factory(dict)

    @staticmethod
    def option_name(option: Optional[ObjectRef]) -> str:
        """Traefik's name of the option a route refers to (no provider suffix): ``default``
        without a reference, else ``<namespace>-<name>``."""
        return "default" if option is None else option_name(option.namespace, option.name)

    def option_problem(self, option: Optional[ObjectRef]) -> Optional[str]:
        """Why the referenced option cannot be used, or None when it can."""
        key = _key(option)
        if key in self.settings:
            return None
        problem = self.problems.get(key)
        if problem is not None:
            return problem
        name = self.option_name(option)
        return "unknown TLS options: %s" % (name if "@" in name else f"{name}@{PROVIDER}")

    def option_settings(self, option: Optional[ObjectRef]) -> Optional[TLSSettings]:
        """The settings of the referenced option; None when it is unknown or broken."""
        return self.settings.get(_key(option))

    def certificate_for(
        self, sni: str, option: Optional[ObjectRef] = None, local_ip: str = ""
    ) -> Optional[Certificate]:
        """The certificate a handshake with this SNI gets under this option; None when the
        option is unusable or its ``sniStrict`` refuses a name no certificate serves."""
        settings = self.settings.get(_key(option))
        if settings is None:
            return None
        cert = self.store.match(sni, local_ip)
        if cert is None:
            if settings.sni_strict:
                return None
            cert = self.store.default
        return cert

    def server_creator(
        self,
        sni: str,
        option: Optional[ObjectRef] = None,
        alpn_http11_only: bool = False,
        local_ip: str = "",
    ) -> Optional[ServerCreator]:
        """The connection creator for a ClientHello with server name ``sni`` on a router
        with TLS ``option`` (None: ``default``); None means refuse the connection.

        ``alpn_http11_only`` leaves ``h2`` out of the ALPN selection, for listeners whose
        HTTP engine speaks HTTP/1.1 only. ``local_ip`` (the listener's address of the
        connection) is matched against IP SANs when the client sent no SNI, as Traefik does.
        """
        cert = self.certificate_for(sni, option, local_ip)
        if cert is None:
            return None
        key = _key(option)
        cache_key = (cert, key, alpn_http11_only)
        creator = self._creators.get(cache_key)
        if creator is None:
            settings = self.settings[key]
            context = make_context(settings, cert, alpn_http11_only)
            creator = ServerCreator(context, cert, settings.name)
            self._creators[cache_key] = creator
        return creator

    def names(self) -> Tuple[str, ...]:
        """Every server name some certificate of the store serves, sorted."""
        return self.store.names()

    def certificates(self) -> Tuple[Certificate, ...]:
        """The certificates served by SNI, in the order they were added."""
        return self.store.certificates

    @property
    def default_certificate(self) -> Certificate:
        return self.store.default

    def option_names(self) -> Tuple[str, ...]:
        """Traefik's names of the usable TLS options, sorted."""
        return tuple(sorted(settings.name for settings in self.settings.values()))


@attrs.frozen
class TLSBuild:
    """The result of :func:`build_tls`: the manager and located errors and warnings."""

    manager: TLSManager
    errors: Tuple[ConfigError, ...] = ()
    warnings: Tuple[ConfigError, ...] = ()


@attrs.define
class _Builder:
    secrets: Dict[Tuple[str, str], Secret]
    now: datetime.datetime
    errors: List[ConfigError] = attrs.Factory(list)
    warnings: List[ConfigError] = attrs.Factory(list)
    loaded: Dict[Tuple[str, str], Optional[Certificate]] = attrs.Factory(dict)

    def certificate(
        self, namespace: str, name: str, where: Location, field: str
    ) -> Optional[Certificate]:
        """The key pair of Secret ``namespace/name``; errors about the Secret's content are
        reported once at the Secret, a missing Secret at each reference."""
        secret = self.secrets.get((namespace, name))
        if secret is None:
            message = "%s: secret %s/%s does not exist" % (field, namespace, name)
            self.errors.append(where.error(message))
            return None
        if (namespace, name) in self.loaded:
            return self.loaded[(namespace, name)]
        cert: Optional[Certificate] = None
        try:
            cert = certificate_from_secret(secret)
        except CertificateError as exc:
            self.errors.append(_at(secret, str(exc)))
        else:
            if cert.not_after < self.now:
                message = "certificate for %s expired on %s" % (
                    ", ".join(cert.names) or "no name",
                    cert.not_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
                )
                self.warnings.append(_at(secret, message))
        self.loaded[(namespace, name)] = cert
        return cert


def _at(resource: Resource, message: str) -> ConfigError:
    return resource.meta.location.error(message)


def _single_default(
    candidates: Sequence[Union[TLSOption, TLSStore]], what: str, errors: List[ConfigError]
) -> Optional[Union[TLSOption, TLSStore]]:
    """The one resource named ``default``; several (in different namespaces) are all dropped
    with an error at each, as Traefik's CRD provider does."""
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        # The file provider's (tsproxy/config/fileformat.py) have no namespace.
        namespaces = ", ".join(sorted(item.meta.namespace or "@file" for item in candidates))
        for item in candidates:
            message = "%s named default defined in several namespaces (%s): all are ignored" % (
                what,
                namespaces,
            )
            errors.append(_at(item, message))
    return None


def build_tls(
    resources: Iterable[Resource],
    now: Optional[datetime.datetime] = None,
    certificates: Sequence[Tuple[str, str, Location]] = (),
    default_certificate: Optional[Tuple[str, str, Location]] = None,
) -> TLSBuild:
    """Read the TLS resources: every certificate a route's ``tls.secretName`` or the
    ``default`` TLSStore names, the default certificate, and every TLSOption.

    ``now`` (default: the current time) decides which certificates are reported expired.
    ``certificates`` ((namespace, Secret name, where) each) are served too, and
    ``default_certificate`` is the default one unless the default TLSStore names one: the
    file provider's ``tls.certificates`` and ``tls.stores.default``, as Secrets.
    """
    resources = tuple(resources)
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    secrets = {(r.meta.namespace, r.meta.name): r for r in resources if isinstance(r, Secret)}
    builder = _Builder(secrets, now)

    settings: Dict[OptionKey, TLSSettings] = {DEFAULT_KEY: DEFAULT_SETTINGS}
    problems: Dict[OptionKey, str] = {}
    options = [r for r in resources if isinstance(r, TLSOption)]
    default_option = _single_default(
        [o for o in options if o.meta.name == "default"], "TLSOption", builder.errors
    )
    for option in options:
        if option.meta.name == "default":
            if option is not default_option:
                continue
            key, name = DEFAULT_KEY, "default"
        else:
            key = (option.meta.namespace, option.meta.name)
            name = option_name(option.meta.namespace, option.meta.name)
        built, errors, warnings = settings_from_option(option, secrets, name)
        builder.errors.extend(errors)
        builder.warnings.extend(warnings)
        if built is not None:
            settings[key] = built
        elif key == DEFAULT_KEY:
            # A broken `default` TLSOption breaks every router left on the default options.
            del settings[DEFAULT_KEY]
            problems[key] = "building TLS config for default: " + errors[0].message
        else:
            problems[key] = "building TLS config for %s@%s: %s" % (
                name,
                PROVIDER,
                errors[0].message,
            )

    stores = [r for r in resources if isinstance(r, TLSStore)]
    store = _single_default(
        [s for s in stores if s.meta.name == "default"], "TLSStore", builder.errors
    )
    served: List[Certificate] = []
    default_cert: Optional[Certificate] = None
    for resource in resources:
        if isinstance(resource, TLSStore) and resource is store:
            assert isinstance(store, TLSStore)
            ns = store.meta.namespace
            where = store.meta.location
            if store.default_certificate:
                field = "spec.defaultCertificate.secretName"
                default_cert = builder.certificate(ns, store.default_certificate, where, field)
            for secret_name in store.certificates:
                field = "spec.certificates.secretName"
                cert = builder.certificate(ns, secret_name, where, field)
                if cert is not None:
                    served.append(cert)
        elif isinstance(resource, (IngressRoute, IngressRouteTCP)) and resource.tls is not None:
            tls = resource.tls
            meta = resource.meta
            if tls.secret_name and not tls.passthrough:
                # Traefik reads the Secret only where it ends TLS.
                field = "spec.tls.secretName"
                cert = builder.certificate(meta.namespace, tls.secret_name, meta.location, field)
                if cert is not None:
                    served.append(cert)
            if tls.options is not None and _key(tls.options) not in settings:
                if _key(tls.options) in problems:
                    continue  # reported at the TLSOption itself
                name = TLSManager.option_name(tls.options)
                if "@" not in name:
                    name = f"{name}@{PROVIDER}"
                message = "spec.tls.options: unknown TLS options: %s" % (name,)
                if tls.options.name == "default":
                    message += " (the TLSOption named default serves routes without tls.options)"
                builder.errors.append(_at(resource, message))

    for namespace, name, where in certificates:
        cert = builder.certificate(namespace, name, where, "tls.certificates")
        if cert is not None:
            served.append(cert)
    if default_cert is None and default_certificate is not None:
        namespace, name, where = default_certificate
        default_cert = builder.certificate(namespace, name, where, "tls.stores.default")
    if default_cert is None:
        default_cert = generated_default_certificate()
    manager = TLSManager(CertificateStore.build(default_cert, served), settings, problems)
    return TLSBuild(manager, tuple(builder.errors), tuple(builder.warnings))
