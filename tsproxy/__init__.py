"""tsproxy: a Layer-4/7 reverse proxy on Twisted that speaks Traefik's configuration."""

from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["__version__"]
