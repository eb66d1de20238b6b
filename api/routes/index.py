"""``GET /index``: the index version being served, its manifest and counts."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SearcherDep, StateDep
from api.schemas import CacheInfo, IndexInfo, SmoothingInfo

router = APIRouter(tags=["service"])


@router.get("/index", response_model=IndexInfo, responses={503: {"description": "No index loaded yet."}})
async def index_info(searcher: SearcherDep, state: StateDep) -> IndexInfo:
    """The loaded index version, its manifest (model, chunking, corpus, backends) and counts."""
    manifest = searcher.manifest
    cache = searcher.cache
    graph = searcher.smoothing_graph
    smoothing = None if graph is None else SmoothingInfo(
        weight=searcher.config.smoothing.weight, neighbours=int(graph.ids.shape[1]), graph=graph.method,
        source=graph.source)
    return IndexInfo(
        version=searcher.version,
        directory=str(searcher.directory),
        loaded_at=state.loaded_at.isoformat(timespec="seconds") if state.loaded_at else "",
        reloads=state.reloads,
        backends=searcher.built_backends,
        counts=dict(manifest.counts),
        cache=CacheInfo(size=cache.size, entries=len(cache), hits=cache.hits, misses=cache.misses),
        manifest=manifest.model_dump(mode="json"),
        reranker=searcher.reranker_path,
        smoothing=smoothing,
    )
