"""An in-memory stand-in for an Elasticsearch node, plugged into the real client as its transport node.

The real ``elasticsearch`` client serialises every call into HTTP requests; :class:`FakeNode` receives them,
records them (so tests assert on the exact request bodies the client sends) and answers from a small
in-memory model of the APIs the backend uses: index create/exists/delete, bulk, refresh, count, mappings,
aliases, search and msearch. It enforces what the backend relies on (strict mappings, unit-length vectors
for ``dot_product``, atomic alias actions, documents visible only after a refresh) and scores kNN exactly, so
logic can be tested without a server. It is not Elasticsearch: real-cluster behaviour is covered by the
integration tests.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders, NodeConfig
from elastic_transport._node import NodeApiResponse

_WORD = re.compile(r"\w+")
_STOP = {"a", "an", "and", "are", "as", "at", "be", "by", "for", "how", "i", "in", "is", "it", "of", "on", "or",
         "the", "to", "what", "with", "do", "does"}


@dataclass
class Request:
    """One HTTP request the client sent."""

    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class FakeIndex:
    """One physical index: its mapping, every document written, and those visible since the last refresh."""

    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    visible: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: tuple[dict[str, Any], np.ndarray] | None = None


class ApiFailure(Exception):
    """Raised inside a handler to answer with an Elasticsearch error body."""

    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


Override = Callable[[Request], tuple[int, Any] | None]


class FakeCluster:
    """The state behind every :class:`FakeNode` of one test.

    Attributes:
        requests: Every request received, in order.
        overrides: Called with each request before the normal handling; one that returns ``(status, body)``
            answers instead (to inject 429s, 500s, lost connections …).
        bulk_status: Called with ``(document id, attempt)`` for each bulk item; a status it returns replaces
            the normal outcome (``None`` keeps it).
    """

    def __init__(self) -> None:
        self.indices: dict[str, FakeIndex] = {}
        self.aliases: dict[str, set[str]] = {}
        self.requests: list[Request] = []
        self.overrides: list[Override] = []
        self.bulk_status: Callable[[str, int], int | None] | None = None
        self._attempts: Counter[str] = Counter()

    def node_class(self) -> type[BaseNode]:
        """A node class bound to this cluster, for ``Elasticsearch(url, node_class=...)``."""
        return type("BoundFakeNode", (FakeNode,), {"cluster": self})

    def calls(self, method: str, pattern: str) -> list[Request]:
        """Recorded requests with this method whose path matches the regular expression."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # -- dispatch -----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, Any]:
        self.requests.append(request)
        for override in self.overrides:
            answer = override(request)
            if answer is not None:
                return answer
        parts = [unquote(p) for p in request.path.strip("/").split("/") if p]
        try:
            return 200, self._route(request, parts)
        except ApiFailure as failure:
            return failure.status, {"error": {"type": failure.kind, "reason": failure.reason}, "status": failure.status}

    def _route(self, request: Request, parts: list[str]) -> Any:  # noqa: C901 - a flat routing table
        method, body = request.method, request.body
        if not parts:
            return {"name": "fake", "version": {"number": "9.5.1"}, "tagline": "You Know, for Search"}
        if parts == ["_bulk"]:
            return self._bulk(body)
        if parts == ["_aliases"] and method == "POST":
            return self._update_aliases(body["actions"])
        if parts[0] == "_alias" and len(parts) == 2:
            return self._get_alias(parts[1])
        if len(parts) == 2 and parts[1] == "_alias":
            return {n: {"aliases": {a: {} for a, h in self.aliases.items() if n in h}}
                    for n in self.resolve(parts[0], missing_ok=True)}
        if len(parts) == 2 and parts[1] == "_msearch":
            return self._msearch(parts[0], body)
        if len(parts) == 2 and parts[1] == "_search":
            return self._search(self.resolve(parts[0]), body or {})
        if len(parts) == 2 and parts[1] == "_refresh":
            for name in self.resolve(parts[0]):
                self.indices[name].visible = dict(self.indices[name].docs)
            return {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if len(parts) == 2 and parts[1] == "_count":
            return {"count": sum(len(self.indices[n].visible) for n in self.resolve(parts[0]))}
        if len(parts) == 2 and parts[1] == "_mapping" and method == "GET":
            return {n: {"mappings": self.indices[n].mappings} for n in self.resolve(parts[0], missing_ok=True)}
        if len(parts) == 2 and parts[1] == "_mapping" and method == "PUT":
            for name in self.resolve(parts[0]):
                if "_meta" in body:
                    self.indices[name].mappings["_meta"] = copy.deepcopy(body["_meta"])
            return {"acknowledged": True}
        if len(parts) == 1:
            return self._index_op(method, parts[0], body)
        raise ApiFailure(400, "illegal_argument_exception", f"fake node does not handle {method} {request.path}")

    # -- indices ------------------------------------------------------------------------------------------
    def resolve(self, expression: str, missing_ok: bool = False) -> list[str]:
        """Physical index names for an index expression (names, aliases, wildcards, commas)."""
        out: list[str] = []
        for part in expression.split(","):
            if "*" in part:
                out += sorted(n for n in self.indices if fnmatch.fnmatchcase(n, part))
            elif part in self.aliases:
                out += sorted(self.aliases[part])
            elif part in self.indices:
                out.append(part)
            elif not missing_ok:
                raise ApiFailure(404, "index_not_found_exception", f"no such index [{part}]")
        return out

    def _index_op(self, method: str, name: str, body: Any) -> Any:
        if method == "HEAD":
            if name in self.indices or name in self.aliases:
                return None
            raise ApiFailure(404, "index_not_found_exception", f"no such index [{name}]")
        if method == "PUT":
            if name in self.indices or name in self.aliases:
                raise ApiFailure(400, "resource_already_exists_exception", f"index [{name}] already exists")
            body = body or {}
            body = copy.deepcopy(body)
            self.indices[name] = FakeIndex(mappings=body.get("mappings", {}), settings=body.get("settings", {}))
            return {"acknowledged": True, "shards_acknowledged": True, "index": name}
        if method == "DELETE":
            names = self.resolve(name)
            for n in names:
                del self.indices[n]
                for holders in self.aliases.values():
                    holders.discard(n)
            self.aliases = {a: h for a, h in self.aliases.items() if h}
            return {"acknowledged": True}
        raise ApiFailure(405, "method_not_allowed", f"{method} /{name}")

    def _get_alias(self, alias: str) -> Any:
        if alias not in self.aliases:
            raise ApiFailure(404, "aliases_not_found_exception", f"alias [{alias}] missing")
        return {n: {"aliases": {alias: {}}} for n in sorted(self.aliases[alias])}

    def _update_aliases(self, actions: list[dict[str, Any]]) -> Any:
        aliases = {a: set(h) for a, h in self.aliases.items()}
        for action in actions:  # all or nothing: work on a copy, commit at the end
            (kind, spec), = action.items()
            index, alias = spec["index"], spec["alias"]
            if index not in self.indices:
                raise ApiFailure(404, "index_not_found_exception", f"no such index [{index}]")
            if kind == "add":
                if alias in self.indices:
                    raise ApiFailure(400, "invalid_alias_name_exception", f"an index exists with the name [{alias}]")
                aliases.setdefault(alias, set()).add(index)
            elif kind == "remove":
                if index not in aliases.get(alias, set()):
                    raise ApiFailure(404, "aliases_not_found_exception", f"aliases [{alias}] missing")
                aliases[alias].discard(index)
        self.aliases = {a: h for a, h in aliases.items() if h}
        return {"acknowledged": True}

    # -- documents ----------------------------------------------------------------------------------------
    def _check_source(self, index: FakeIndex, source: dict[str, Any]) -> None:
        properties = index.mappings.get("properties", {})
        for key, value in source.items():
            spec = properties.get(key)
            if spec is None:
                raise ApiFailure(400, "strict_dynamic_mapping_exception", f"mapping does not allow field [{key}]")
            if spec.get("type") == "dense_vector":
                vector = np.asarray(value, np.float64)
                if vector.shape != (spec["dims"],):
                    raise ApiFailure(400, "document_parsing_exception", f"[{key}] has {vector.size} dimensions")
                if spec.get("similarity") == "dot_product" and abs(float(vector @ vector) - 1.0) > 1e-4:
                    raise ApiFailure(
                        400, "document_parsing_exception",
                        "The [dot_product] similarity can only be used with unit-length vectors.",
                    )

    def _bulk(self, lines: list[dict[str, Any]]) -> Any:
        items = []
        for action, source in zip(lines[::2], lines[1::2], strict=True):
            (op, meta), = action.items()
            doc_id = str(meta["_id"])
            self._attempts[doc_id] += 1
            status, result = 201, {"_index": meta["_index"], "_id": doc_id}
            injected = self.bulk_status(doc_id, self._attempts[doc_id]) if self.bulk_status else None
            try:
                if injected is not None and injected >= 300:
                    raise ApiFailure(injected, "es_rejected_execution_exception" if injected == 429
                                     else "injected_failure", f"injected status {injected}")
                index = self.indices.get(meta["_index"])
                if index is None:
                    raise ApiFailure(404, "index_not_found_exception", f"no such index [{meta['_index']}]")
                self._check_source(index, source)
                index.docs[doc_id] = copy.deepcopy(source)
                result.update(status=status, result="created")
            except ApiFailure as failure:
                result.update(status=failure.status, error={"type": failure.kind, "reason": failure.reason})
            items.append({op: result})
        return {"took": 1, "errors": any("error" in next(iter(i.values())) for i in items), "items": items}

    # -- search -------------------------------------------------------------------------------------------
    @staticmethod
    def _passes(source: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
        for clause in filters:
            (kind, spec), = clause.items()
            if kind == "prefix":
                (name, value), = spec.items()
                if not str(source.get(name, "")).startswith(str(value)):
                    return False
                continue
            if kind != "terms":
                raise ApiFailure(400, "parsing_exception", f"fake node handles only terms and prefix, got {kind}")
            (name, values), = spec.items()
            held = source.get(name, [])
            held = held if isinstance(held, list) else [held]
            if not set(held) & set(values):
                return False
        return True

    def _search(self, names: list[str], body: dict[str, Any]) -> Any:
        size = int(body.get("size", 10))
        docs = [(name, doc_id, source) for name in names for doc_id, source in self.indices[name].visible.items()]
        if "knn" in body:
            scored = self._knn(names, docs, body["knn"])
        elif "query" in body:
            scored = self._match(docs, body["query"])
        else:
            scored = [(1.0, d) for d in docs]
        scored.sort(key=lambda pair: (-pair[0], int(pair[1][1])))
        wanted = body.get("_source", True)
        hits = [
            {"_index": name, "_id": doc_id, "_score": score,
             "_source": {k: v for k, v in source.items() if wanted is True or k in wanted}}
            for score, (name, doc_id, source) in scored[:size]
        ]
        return {"took": 1, "timed_out": False, "hits": {"total": {"value": len(scored), "relation": "eq"},
                                                        "max_score": hits[0]["_score"] if hits else None,
                                                        "hits": hits}}

    def _knn(self, names: list[str], docs: list[Any], knn: dict[str, Any]) -> list[Any]:
        if knn["num_candidates"] < knn["k"] or knn["num_candidates"] > 10_000:
            raise ApiFailure(400, "illegal_argument_exception", "[num_candidates] must be in [k, 10000]")
        spec = self.indices[names[0]].mappings["properties"][knn["field"]]
        query = np.asarray(knn["query_vector"], np.float32)
        if query.shape != (spec["dims"],):
            raise ApiFailure(400, "illegal_argument_exception", "query vector has the wrong dimension")
        docs = [d for d in docs if self._passes(d[2], knn.get("filter", []))]
        if not docs:
            return []
        matrix = np.asarray([d[2][knn["field"]] for d in docs], np.float32) if len(names) > 1 or knn.get(
            "filter") else self._matrix(names[0], knn["field"])
        dots = (matrix @ query).astype(np.float64)
        if spec["similarity"] == "dot_product":
            scores = (1.0 + dots) / 2.0
        else:
            scores = np.where(dots >= 0, dots + 1.0, 1.0 / (1.0 - np.minimum(dots, 0.0)))
        scores = scores.astype(np.float32)
        order = np.lexsort((np.array([int(d[1]) for d in docs]), -scores))[: knn["k"]]
        return [(float(scores[i]), docs[i]) for i in order]

    def _matrix(self, name: str, field_name: str) -> np.ndarray:
        """The visible vectors of one index in document order (cached until the next refresh)."""
        index = self.indices[name]
        if index.cache is None or index.cache[0] is not index.visible:
            matrix = np.asarray([source[field_name] for source in index.visible.values()], np.float32)
            index.cache = (index.visible, matrix)
        return index.cache[1]

    def _match(self, docs: list[Any], query: dict[str, Any]) -> list[Any]:
        filters: list[dict[str, Any]] = []
        if "bool" in query:
            filters = query["bool"].get("filter", [])
            (query,) = query["bool"]["must"]
        (field_name, spec), = query["match"].items()
        text = spec["query"] if isinstance(spec, dict) else spec
        terms = [t for t in _WORD.findall(text.lower()) if t not in _STOP]
        docs = [d for d in docs if self._passes(d[2], filters)]

        def words(source: dict[str, Any]) -> list[str]:
            joined = " ".join(str(source.get(f, "")) for f in ("title", "heading", "text"))
            return _WORD.findall(joined.lower())

        bags = [Counter(words(d[2])) for d in docs]
        scored = []
        for doc, bag in zip(docs, bags, strict=True):
            score = 0.0
            for term in set(terms):
                df = sum(1 for b in bags if term in b)
                if bag[term]:
                    score += math.log(1 + len(docs) / df) * bag[term] / (bag[term] + 1.2)
            if score > 0:
                scored.append((score, doc))
        return scored

    def _msearch(self, expression: str, lines: list[dict[str, Any]]) -> Any:
        responses = []
        for header, body in zip(lines[::2], lines[1::2], strict=True):
            try:
                response = self._search(self.resolve(header.get("index", expression)), body)
                responses.append({**response, "status": 200})
            except ApiFailure as failure:
                responses.append({"error": {"type": failure.kind, "reason": failure.reason},
                                  "status": failure.status})
        return {"took": 1, "responses": responses}


class FakeNode(BaseNode):
    """A transport node that hands each request to its :class:`FakeCluster` instead of the network."""

    _CLIENT_META_HTTP_CLIENT = ("fk", "0")
    cluster: FakeCluster

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None, request_timeout: Any = None) -> NodeApiResponse:
        parts = urlsplit(target)
        parsed: Any = None
        if body:
            text = body.decode()
            content_type = str(headers.get("content-type", "")) if headers else ""
            if "ndjson" in content_type:
                parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                parsed = json.loads(text)
        request = Request(method, parts.path, dict(parse_qsl(parts.query)), parsed)
        status, answer = self.cluster.handle(request)
        payload = b"" if method == "HEAD" or answer is None else json.dumps(answer).encode()
        meta = ApiResponseMeta(
            status=status, http_version="1.1",
            headers=HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"}),
            duration=0.0, node=self.config,
        )
        return NodeApiResponse(meta, payload)


def install(monkeypatch: Any) -> FakeCluster:
    """Make every client the backend creates talk to a new :class:`FakeCluster` (returned)."""
    from elasticsearch import Elasticsearch

    from indexing.backends import elasticsearch_index

    cluster = FakeCluster()

    def make_client(url: str, config: Any) -> Elasticsearch:
        options = elasticsearch_index.client_options(config)
        return Elasticsearch(url, node_class=cluster.node_class(), **options)

    monkeypatch.setattr(elasticsearch_index, "make_client", make_client)
    return cluster
