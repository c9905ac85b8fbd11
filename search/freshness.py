"""Which products' fused vectors are out of step with the fusion spaces in service.

Every product's stored fused vector records the space it was made in
(``ProductEmbedding.space_version``). Two spaces matter (see :mod:`search.embedding.spaces`): the live
index's, which queries and incremental writes use, and the active one, which the next
``manage.py reindex`` builds in. A new fusion head therefore needs no mass "pending" mark:

* products in the live index's space are fresh for search as it is;
* products not in the active space are what ``reindex`` will move (``search_status`` says so);
* an indexed product whose vectors are in *neither* space was written into the live index in
  a space it does not serve (e.g. a write that raced a swap): the sweeper indexes it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from search.embedding import spaces
from search.models import ProductEmbedding
from shop.models import IndexState, Product


@dataclass(frozen=True)
class SpaceFreshness:
    """Counts of products by the space of their stored fused vectors.

    Attributes:
        live: version of the live index's space (``None``: no loadable space fits the index).
        active: version of the active space (what a rebuild uses).
        total: products in the catalog.
        in_live: products whose fused vectors are in the live index's space.
        in_active: products whose fused vectors are in the active space.
        foreign: indexed or failed products whose fused vectors are in neither space.
    """

    live: str | None
    active: str
    total: int
    in_live: int
    in_active: int
    foreign: int

    @property
    def rebuild_needed(self) -> bool:
        """True when the active space differs from the live index's (``reindex`` swaps it in)."""
        return self.live != self.active

    def notes(self) -> list[str]:
        """Lines for ``search_status`` (empty when every product is in the live index's space)."""
        out = []
        if self.rebuild_needed and self.total:
            out.append(f"{self.total - self.in_active} of {self.total} products have no fused vectors in the active space "
                       f"{self.active} yet: `manage.py reindex` builds them and swaps the index")
        if self.foreign:
            out.append(f"{self.foreign} indexed products have fused vectors in neither the live index's space nor the "
                       "active one; the sweeper indexes them again")
        return out


def products_outside_space(version: str) -> int:
    """Products whose stored fused vectors are not in the space ``version`` (or that have none)."""
    return Product.objects.count() - ProductEmbedding.objects.filter(space_version=version).count()


def _foreign(live: str | None, active: str):
    """Indexed or failed products whose embeddings are in neither ``live`` nor ``active``."""
    versions = [v for v in (live, active) if v]
    return (
        Product.objects.filter(index_state__in=[IndexState.INDEXED, IndexState.FAILED], embedding__isnull=False)
        .exclude(embedding__space_version__in=versions)
    )


def space_freshness(backend) -> SpaceFreshness:
    """Where the catalog's fused vectors stand against ``backend``'s live index and the active space.

    Reads the indexed ``space_version`` column and the two spaces' names (no model is loaded).

    Raises:
        SearchBackendError: the engine cannot say which space its live index holds.
    """
    live = spaces.served_ref(backend)
    active = spaces.active_ref().version
    live_version = live.version if live else None
    total = Product.objects.count()
    in_active = ProductEmbedding.objects.filter(space_version=active).count()
    in_live = in_active if live_version == active else ProductEmbedding.objects.filter(space_version=live_version).count()
    return SpaceFreshness(live=live_version, active=active, total=total, in_live=in_live, in_active=in_active,
                          foreign=_foreign(live_version, active).count())


def products_in_foreign_space(backend, *, limit: int = 10_000) -> list[int]:
    """Ids of indexed or failed products whose fused vectors the live index does not serve.

    Their stored ``space_version`` is neither the live index's nor the active space's: a write
    that raced a swap put vectors of the previous space into the new index. Products in the
    active space while the live index still serves another were written by a rebuild (perhaps
    one that was killed); they are left alone, since their live documents came from earlier
    writes in the live space. At most ``limit`` ids, lowest first.
    """
    live = spaces.served_ref(backend)
    if live is None:  # no loadable space fits the live index: only `reindex` helps
        return []
    return list(_foreign(live.version, spaces.active_ref().version).order_by("pk").values_list("pk", flat=True)[:limit])
