"""`tsproxy check DIR`: review a configuration directory without opening a port, and print
every finding with its file and line, as text for people or JSON for tools.

Opens no port and starts no reactor; the verdict is the same a reload would reach.
"""

from __future__ import annotations

import json
import os
import re
from typing import IO, Dict, List, Union

from tsproxy.config.errors import ConfigError
from tsproxy.config.load import load_directory
from tsproxy.runtime.audit import Review, review

__all__ = ["check_directory", "findings"]

_NOTICE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)
SEVERITIES = ("error", "warning", "notice")

Finding = Dict[str, Union[str, int]]


def _finding(directory: str, severity: str, problem: Union[ConfigError, str]) -> Finding:
    if isinstance(problem, str):
        match = _NOTICE.match(problem)
        assert match is not None, problem  # the loader writes every notice as file:line: text
        file, line, resource, message = match["file"], int(match["line"]), "", match["message"]
    else:
        file, line, resource, message = (
            problem.file,
            problem.line,
            problem.resource,
            problem.message,
        )
    # Paths as the user can open them: relative to where the command ran.
    path = file if file == directory or os.path.isabs(file) else os.path.join(directory, file)
    return {
        "severity": severity,
        "file": path,
        "line": line,
        "resource": resource,
        "message": message,
    }


def findings(directory: str, result: Review) -> List[Finding]:
    """Errors, then warnings, then notices, each in the order they were found."""
    return (
        [_finding(directory, "error", e) for e in result.errors]
        + [_finding(directory, "warning", w) for w in result.warnings]
        + [_finding(directory, "notice", n) for n in result.notices]
    )


def _text(finding: Finding) -> str:
    where = f"{finding['file']}:{finding['line']}: {finding['severity']}: "
    resource = f"{finding['resource']}: " if finding["resource"] else ""
    return f"{where}{resource}{finding['message']}"


def check_directory(directory: str, fmt: str, out: IO[str]) -> int:
    """Review ``directory``, write the findings to ``out``; 1 if there is an error, else 0."""
    found = findings(directory, review(load_directory(directory)))
    counts = {severity: sum(f["severity"] == severity for f in found) for severity in SEVERITIES}
    if fmt == "json":
        document = {"directory": directory, "findings": found, "counts": counts}
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        for finding in found:
            out.write(_text(finding) + "\n")
        summary = ", ".join(f"{counts[s]} {s}{'' if counts[s] == 1 else 's'}" for s in SEVERITIES)
        out.write(f"{directory}: {summary}\n")
    return 1 if counts["error"] else 0
