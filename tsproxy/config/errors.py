"""Located configuration problems: what went wrong, in which file, line and resource.

Every error a user can cause is one of these values; none carries a traceback.
"""

from __future__ import annotations

import attrs


@attrs.frozen(auto_exc=False)
class ConfigError(Exception):
    """A problem in the configuration, rendered as ``file:line: resource: message``.

    ``file`` is relative to the configuration directory, ``line`` is 1-based, ``resource``
    is ``"<Kind> <namespace>/<name>"`` or empty for problems that belong to a whole file.
    It is an exception so that parsers can raise it, and a frozen value so results compare.
    Line 0 means the place has no lines: a key of a key-value store (``file`` is then
    ``etcd:traefik/http/routers/r/priority``) or an object of the Kubernetes API.
    """

    file: str
    line: int
    resource: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.resource:
            return f"{where}: {self.resource}: {self.message}"
        return f"{where}: {self.message}"


@attrs.frozen
class Location:
    """Where a piece of configuration was written; the resource label is optional."""

    file: str
    line: int
    resource: str = ""

    def error(self, message: str) -> ConfigError:
        """A ConfigError at this place."""
        return ConfigError(self.file, self.line, self.resource, message)

    def at(self, line: int) -> Location:
        """The same file and resource at another line."""
        return Location(self.file, line, self.resource)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file
