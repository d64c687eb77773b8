"""Helpers for the access-control middleware tests: YAML sections as Fields, a fake build
context, requests made from vector cases, and the list of deliberate deviations."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

import attrs
import yaml
from twisted.internet.defer import Deferred

from tsproxy.config.schema import Fields
from tsproxy.config.yamlio import load_documents
from tsproxy.middlewares.base import Answer, HeaderList, Request

DATA = os.path.join(os.path.dirname(__file__), "data", "middlewares")


def load_vectors(name: str) -> Dict[str, Any]:
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def deviations(file: str) -> Dict[str, Dict[str, Any]]:
    """The listed deviations of one vector file, by case name."""
    listed = load_vectors("auth-deviations.json")["deviations"]
    return {entry["case"]: entry for entry in listed if entry["file"] == file}


def fields_of(section: Any, path: str = "spec.kind") -> Fields:
    """Fields over `section` as if read from a YAML file (lines counted from 1)."""
    text = yaml.safe_dump({"section": section}, sort_keys=False)
    documents, errors = load_documents(text, "test.yaml")
    assert not errors, errors
    data = documents[0].data["section"]  # type: ignore[index]
    if data is None or data == {}:
        documents, _ = load_documents("section: {}\n", "test.yaml")
        data = documents[0].data["section"]  # type: ignore[index]
    return Fields(data, path, [], 1)


def fields_yaml(text: str, path: str = "spec.kind") -> Fields:
    """Fields over the mapping written in `text` (keeps the lines as written)."""
    documents, errors = load_documents(text, "test.yaml")
    assert not errors, errors
    return Fields(documents[0].data, path, [], 1)  # type: ignore[arg-type]


@attrs.define
class FakeContext:
    """A BuildContext with Secrets given as plain dicts."""

    reactor: Any = None
    namespace: str = "default"
    secrets: Dict[str, Dict[str, bytes]] = attrs.Factory(dict)
    types: Dict[str, str] = attrs.Factory(dict)
    request_bodies: bool = False

    def secret(self, name: str) -> Optional[Dict[str, bytes]]:
        return self.secrets.get(name)

    def secret_type(self, name: str) -> Optional[str]:
        return self.types.get(name)


def header_items(headers: Optional[Dict[str, Any]]) -> List[Tuple[str, str]]:
    items: List[Tuple[str, str]] = []
    for name, value in (headers or {}).items():
        for one in value if isinstance(value, list) else [value]:
            items.append((name, one))
    return items


def split_url(url: str) -> Tuple[str, str, Optional[str]]:
    """(host, path, query) of an absolute test URL."""
    rest = url.split("://", 1)[1]
    host, slash, target = rest.partition("/")
    path, question, query = ("/" + target if slash else "/").partition("?")
    return host, path, (query if question else None)


def request_of(case_request: Dict[str, Any], **extra: Any) -> Request:
    """A Request from a vector case's request (Go test defaults for what it leaves out)."""
    url = case_request.get("url", "http://example.com/")
    host, path, query = split_url(url)
    host = case_request.get("host", host)
    items = header_items(case_request.get("headers"))
    if host and not any(name.lower() == "host" for name, _ in items):
        items.insert(0, ("Host", host))
    remote = case_request.get("remoteAddr", "192.0.2.1:1234")
    values: Dict[str, Any] = dict(
        method=case_request.get("method", "GET"),
        path=path,
        query=query,
        headers=HeaderList(items),
        client_ip=remote,
        tls=bool(case_request.get("tls", url.startswith("https://"))),
    )
    values.update(extra)
    return Request(**values)


def run_step(step: Any, request: Request) -> Any:
    """The step's result, waiting for a Deferred that has already fired."""
    result = step.handle(request)
    if isinstance(result, Deferred):
        box: List[Any] = []
        result.addBoth(box.append)
        assert box, "the step's Deferred has not fired"
        if hasattr(box[0], "raiseException"):
            box[0].raiseException()
        return box[0]
    return result


def header_value(headers: Any, name: str) -> Optional[Any]:
    """One value, several as a list, or None; as the vectors write expected headers."""
    values = (
        headers.get_all(name)
        if hasattr(headers, "get_all")
        else [v for k, v in headers if k.lower() == name.lower()]
    )
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def answer_headers(answer: Answer) -> HeaderList:
    return HeaderList(answer.headers)
