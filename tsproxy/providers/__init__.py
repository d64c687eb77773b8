"""Providers: where dynamic configuration comes from, and how their names are told apart.

Every provider yields its configuration in a namespace of its own, as Traefik does: a router,
service or transport ``x`` of the file provider is ``x@file`` once merged, one of the
Kubernetes CRD provider ``x@kubernetescrd``, Traefik's own ``x@internal``. Inside the merged
routing table a name carries its provider after ``@``, except the Kubernetes CRD provider's,
which stay bare (the table predates providers; ``qualified`` adds the suffix for the API,
metrics and logs). A reference without ``@`` resolves in the referrer's own provider.
"""

from __future__ import annotations

from typing import Tuple

__all__ = [
    "CRD",
    "FILE",
    "INTERNAL",
    "PROVIDER_TITLES",
    "bare",
    "in_provider",
    "provider_of",
    "qualified",
    "reference",
    "split",
]

#: Provider names as they appear after ``@``.
CRD = "kubernetescrd"
FILE = "file"
INTERNAL = "internal"
#: The names ``/api/overview`` lists providers under (Traefik's static configuration keys).
PROVIDER_TITLES = {CRD: "KubernetesCRD", FILE: "File"}


def split(name: str) -> Tuple[str, str]:
    """(name, provider) of a name as the routing table keeps it (bare: kubernetescrd)."""
    base, at, provider = name.rpartition("@")
    if not at:
        return name, CRD
    return base, provider


def provider_of(name: str) -> str:
    return split(name)[1]


def bare(name: str) -> str:
    """The name without its provider suffix."""
    return split(name)[0]


def qualified(name: str) -> str:
    """``name@provider`` as Traefik's API, metrics and logs show it."""
    base, provider = split(name)
    return f"{base}@{provider}"


def in_provider(name: str, provider: str) -> str:
    """How the routing table keeps ``name`` of ``provider`` (CRD names stay bare)."""
    return name if provider == CRD else f"{name}@{provider}"


def reference(written: str, own: str) -> Tuple[str, str]:
    """(name, provider) a reference written in provider ``own`` points to: ``x@p`` is ``x``
    of ``p``, a bare ``x`` is ``x`` of ``own``."""
    base, at, provider = written.rpartition("@")
    if not at:
        return written, own
    return base, provider
