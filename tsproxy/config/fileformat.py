"""Traefik's dynamic configuration format (what its file provider reads), YAML or TOML, into
frozen values: ``http`` routers, services, serversTransports and middlewares, and ``tls``
certificates, options and stores (as the Secrets and TLSOptions the TLS build reads).

Pure: parses located documents; certificate files are read through the ``read_file``
callable it is given. Names stay as written (the provider suffix is added when the
configurations are merged). Go templates are not supported: a ``{{`` in a file is an error.
The ``tcp`` and ``udp`` sections are errors until the file provider reads them.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.fileformat_sections import SECTIONS_OF

# The values live in fileformat_values; the names this module always exported stay importable
# from here (redundant re-exports).
from tsproxy.config.fileformat_values import (
    FILE_SECRETS,
    FileChild,
    FileConfiguration,
    FileL4Service,
    FileLoadBalancer,
    FileMiddleware,
    FileMirroring,
    FileRouter,
    FileServer,
    FileService,
    FileTCPTransport,
    FileTLS,
    FileTransport,
    FileWeighted,
    SecretKey,
)
from tsproxy.config.kinds_services import read_transport
from tsproxy.config.kinds_tls import read_tls_option
from tsproxy.config.resources import Meta, Resource, Secret, TransportSettings
from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.tomlio import load_toml
from tsproxy.config.transports_tcp import read_tcp_transport
from tsproxy.config.yamlio import Document, YAMLMap, load_documents
from tsproxy.tls.certs import CertificateError, load_ca_bundle, load_key_pair

__all__ = [
    "FILE_SECRETS",
    "FileChild",
    "FileConfiguration",
    "FileL4Service",
    "FileLoadBalancer",
    "FileMiddleware",
    "FileMirroring",
    "FileRouter",
    "FileServer",
    "FileService",
    "FileTransport",
    "FileWeighted",
    "is_dynamic_document",
    "parse_dynamic_files",
    "parse_dynamic_tree",
    "read_root_cas",
]

_SECTIONS = ("http", "tcp", "udp", "tls")


def is_dynamic_document(data: object) -> bool:
    """Whether a document looks like Traefik's dynamic configuration (no apiVersion/kind,
    only http/tcp/udp/tls at the top)."""
    return (
        isinstance(data, YAMLMap)
        and bool(data)
        and all(isinstance(key, str) and key in _SECTIONS for key in data)
    )


def read_root_cas(fields: Fields, read_file: Optional[Callable[[str], bytes]]) -> Tuple[bytes, ...]:
    """``rootCAs``: Traefik's FileOrContent items (PEM text, or a file path, relative to the
    configuration directory), each read and checked: a file that cannot be read or bad PEM
    is a located error."""
    roots = []
    for index, value in enumerate(fields.strings("rootCAs")):
        if value.lstrip().startswith("-----BEGIN"):
            pem = value.encode()
        elif read_file is None:
            raise fields.fail(
                "rootCAs", f"[{index}]: a file path needs the configuration directory"
            )
        else:
            try:
                pem = read_file(value)
            except OSError as exc:
                raise fields.fail(
                    "rootCAs", f"[{index}]: cannot read {value}: {exc.strerror or exc}"
                ) from None
        try:
            load_ca_bundle(pem)
        except CertificateError as exc:
            raise fields.fail("rootCAs", f"[{index}]: {exc}") from None
        roots.append(pem)
    return tuple(roots)


class _Reader:
    """Reads documents into one FileConfiguration; the first definition of a name wins.
    ``provider`` is the provider the names belong to (``file``; ``etcd`` and ``redis`` read
    the same format from their key trees); ``place`` turns a document's (file, line) into
    where errors say it is (a key-value provider maps lines to key paths)."""

    def __init__(
        self,
        read_file: Optional[Callable[[str], bytes]] = None,
        provider: str = "file",
        place: Optional[Callable[[str, int], Tuple[str, int]]] = None,
    ) -> None:
        self.provider = provider
        self.place = place if place is not None else lambda file, line: (file, line)
        self.sections: Dict[str, Dict[str, Any]] = {
            f"{group}.{key}": {}
            for group, sections in SECTIONS_OF.items()
            for key, _, _ in sections
        }
        self.errors: List[ConfigError] = []
        self.notices: List[str] = []
        self.read_file = read_file
        self.tls_resources: List[Resource] = []
        self.tls_options: Dict[str, Location] = {}
        self.certificates: List[SecretKey] = []
        self.default_certificate: Optional[SecretKey] = None

    def error(self, file: str, line: int, resource: str, message: str) -> ConfigError:
        where, at = self.place(file, line)
        return ConfigError(where, at, resource, message)

    def location(self, file: str, line: int, resource: str) -> Location:
        where, at = self.place(file, line)
        return Location(where, at, resource)

    def document(self, document: Document, file: str) -> None:
        data = document.data
        if not isinstance(data, YAMLMap):
            self.errors.append(self.error(file, document.line, "", "not a mapping"))
            return
        notices: List[Tuple[int, str]] = []
        try:
            root = Fields(data, "", notices)
            groups = {group: root.mapping(group) for group in SECTIONS_OF}
            tls = root.mapping("tls")
            root.done()
        except FieldError as exc:
            self.errors.append(self.error(file, exc.line, "", str(exc)))
            groups, tls = {}, None
        for group, fields in groups.items():
            if fields is not None:
                self._group(group, fields, file)
        if tls is not None:
            self._tls(tls, file)
        self.notices.extend(f"{self.location(file, line, '')}: {text}" for line, text in notices)

    def _group(self, group: str, http: Fields, file: str) -> None:
        for key, what, parse in SECTIONS_OF[group]:
            if (group, key) == ("http", "serversTransports"):
                parse = self._transport  # its CA and certificate files are read here
            elif (group, key) == ("tcp", "serversTransports"):
                parse = self._tcp_transport  # the same for its tls section
            try:
                section = http.mapping(key)
            except FieldError as exc:
                self.errors.append(self.error(file, exc.line, "", str(exc)))
                continue
            if section is None:
                continue
            for name in list(section.data):
                line = section.line_of(str(name))
                location = self.location(file, line, f"{what} {name}")
                try:
                    if not isinstance(name, str) or not name or "@" in name:
                        raise FieldError(line, section.path_of(str(name)), "invalid name")
                    fields = section.mapping(name, required=True)
                    assert fields is not None
                    value = parse(name, fields, location, self.provider)
                except FieldError as exc:
                    self.errors.append(self.error(file, exc.line, location.resource, str(exc)))
                    continue
                first = self.sections[f"{group}.{key}"].setdefault(name, value)
                if first is not value:
                    message = f"defined twice, this one is ignored (first at {first.location})"
                    self.errors.append(location.error(message))
        try:
            http.done()
        except FieldError as exc:
            self.errors.append(self.error(file, exc.line, "", str(exc)))

    def _pem(self, fields: Fields, key: str) -> bytes:
        """``certFile``/``keyFile``: PEM text, or a file path (relative: to the
        configuration directory), as Traefik's FileOrContent."""
        value = fields.string(key, required=True)
        if value.lstrip().startswith("-----BEGIN"):
            return value.encode()
        if self.read_file is None:
            raise fields.fail(key, "a file path needs the configuration directory")
        try:
            return self.read_file(value)
        except OSError as exc:
            raise fields.fail(key, f"cannot read {value}: {exc.strerror or exc}") from None

    def _transport(self, name: str, fields: Fields, location: Location, own: str) -> FileTransport:
        """A serversTransport with its ``rootCAs`` (paths or PEM) and ``certificates``
        read and checked: a file that cannot be read or bad PEM is its error."""
        roots = read_root_cas(fields, self.read_file)
        certificates = self._certificates(fields)
        settings = read_transport(fields)
        return FileTransport(
            name,
            location,
            attrs.evolve(settings, root_cas=roots, certificates=certificates),
        )

    def _certificates(self, fields: Fields) -> Tuple[Tuple[bytes, bytes], ...]:
        """``certificates``: client certificates (certFile, keyFile), each key pair loaded."""
        certificates = []
        for item in fields.mappings("certificates"):
            pair = (self._pem(item, "certFile"), self._pem(item, "keyFile"))
            item.done()
            try:
                load_key_pair(pair[0], pair[1], item.path)
            except CertificateError as exc:
                raise item.whole(str(exc)) from None
            certificates.append(pair)
        return tuple(certificates)

    def _tcp_transport(
        self, name: str, fields: Fields, location: Location, own: str
    ) -> FileTCPTransport:
        """A ``tcp.serversTransports`` entry: dial settings, terminationDelay, proxyProtocol,
        and ``tls`` (serverName, insecureSkipVerify, rootCAs, certificates, peerCertURI)
        read as a serversTransport's; spiffe is an error (it changes which servers are
        trusted)."""
        tls = TransportSettings()
        _present, tls_fields = fields.section("tls")
        if tls_fields is not None:
            if tls_fields.has("spiffe") or "spiffe" in tls_fields.data:
                raise tls_fields.fail(
                    "spiffe", "SPIFFE is not supported yet (it decides which servers are trusted)"
                )
            tls = TransportSettings(
                server_name=tls_fields.string("serverName"),
                insecure_skip_verify=tls_fields.boolean("insecureSkipVerify", False),
                peer_cert_uri=tls_fields.string("peerCertURI"),
                root_cas=read_root_cas(tls_fields, self.read_file),
                certificates=self._certificates(tls_fields),
            )
            tls_fields.done()
        return FileTCPTransport(name, location, read_tcp_transport(fields, tls))

    def _secret(self, fields: Fields, location: Location) -> SecretKey:
        name = f"certificate-{len(self.tls_resources)}"
        data = (
            ("tls.crt", self._pem(fields, "certFile")),
            ("tls.key", self._pem(fields, "keyFile")),
        )
        meta = Meta("Secret", f"@{self.provider}", name, location)
        self.tls_resources.append(Secret(meta, "kubernetes.io/tls", data))
        return (f"@{self.provider}", name, location)

    def _tls(self, tls: Fields, file: str) -> None:
        def located(read: Callable[[], None]) -> None:
            try:
                read()
            except FieldError as exc:
                self.errors.append(self.error(file, exc.line, "", str(exc)))

        def certificates() -> None:
            for item in tls.mappings("certificates"):
                location = self.location(file, item.line, item.path)
                stores = item.strings("stores")
                if any(store != "default" for store in stores):
                    item.note("stores", "only the default store takes effect, as in Traefik")
                key = self._secret(item, location)
                item.done()
                self.certificates.append(key)

        def options() -> None:
            section = tls.mapping("options")
            for name in list(section.data) if section is not None else ():
                assert section is not None
                line = section.line_of(str(name))
                location = self.location(file, line, f"tls option {name}")
                first = self.tls_options.setdefault(str(name), location)
                if first is not location:
                    message = f"defined twice, this one is ignored (first at {first})"
                    self.errors.append(location.error(message))
                    continue
                fields = section.mapping(str(name), required=True)
                assert fields is not None
                full = "default" if name == "default" else f"{name}@{self.provider}"
                meta = Meta("TLSOption", "", full, location)
                self.tls_resources.append(read_tls_option(fields, meta))

        def stores() -> None:
            section = tls.mapping("stores")
            for name in list(section.data) if section is not None else ():
                assert section is not None
                fields = section.mapping(str(name), required=True)
                assert fields is not None
                if name != "default":
                    section.note(str(name), "only the store named default takes effect")
                if fields.has("defaultGeneratedCert"):
                    raise fields.fail("defaultGeneratedCert", "ACME resolvers are not supported")
                default = fields.mapping("defaultCertificate")
                if default is not None and name == "default":
                    location = self.location(file, default.line, default.path)
                    self.default_certificate = self._secret(default, location)
                    default.done()
                fields.done()

        for read in (certificates, options, stores):
            located(read)
        located(tls.done)

    def configuration(self) -> FileConfiguration:
        return FileConfiguration(
            routers=tuple(self.sections["http.routers"].values()),
            services=tuple(self.sections["http.services"].values()),
            transports=tuple(self.sections["http.serversTransports"].values()),
            middlewares=tuple(self.sections["http.middlewares"].values()),
            tcp_routers=tuple(self.sections["tcp.routers"].values()),
            tcp_services=tuple(self.sections["tcp.services"].values()),
            tcp_middlewares=tuple(self.sections["tcp.middlewares"].values()),
            udp_routers=tuple(self.sections["udp.routers"].values()),
            udp_services=tuple(self.sections["udp.services"].values()),
            tcp_transports=tuple(self.sections["tcp.serversTransports"].values()),
            tls=FileTLS(
                tuple(self.tls_resources), tuple(self.certificates), self.default_certificate
            ),
        )


def _template_line(text: str) -> int:
    index = text.find("{{")
    return 0 if index < 0 else text.count("\n", 0, index) + 1


def parse_dynamic_files(
    files: Sequence[Tuple[str, str]],
    read_file: Optional[Callable[[str], bytes]] = None,
) -> Tuple[FileConfiguration, Tuple[ConfigError, ...], Tuple[str, ...]]:
    """Read (name, text) pairs, YAML or TOML by extension, into one configuration;
    ``read_file`` reads the certificate files they name (None: only inline PEM)."""
    reader = _Reader(read_file)
    for name, text in files:
        template = _template_line(text)
        if template:
            message = "Go templates ({{ ... }}) are not supported: the file is not read"
            reader.errors.append(ConfigError(name, template, "", message))
            continue
        load = load_toml if name.endswith(".toml") else load_documents
        documents, errors = load(text, name)
        reader.errors.extend(errors)
        for document in documents:
            reader.document(document, name)
    return reader.configuration(), tuple(reader.errors), tuple(reader.notices)


def parse_dynamic_tree(
    data: YAMLMap, provider: str, place: Callable[[str, int], Tuple[str, int]]
) -> Tuple[FileConfiguration, Tuple[ConfigError, ...], Tuple[str, ...]]:
    """Read one tree in the dynamic format as ``provider``'s (a key-value store's, see
    tsproxy.providers.kv); ``place`` maps the tree's line numbers to where errors say they
    are. Certificates must be inline PEM (there is no directory to read files from)."""
    reader = _Reader(None, provider, place)
    reader.document(Document(0, data.line, data), provider)
    return reader.configuration(), tuple(reader.errors), tuple(reader.notices)
