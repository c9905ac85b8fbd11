"""Reads of the catalog for the storefront pages (search itself lives in ``search.selectors``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from shop.models import Category, Product, ProductImage

#: Largest primary key a database can hold (signed 64-bit); larger ids in a URL are simply unknown.
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class CategoryTile:
    """A top-level category on the home page: its path (the search filter), size and a photo."""

    category: Category
    product_count: int
    image: ProductImage | None


def _with_images(queryset: QuerySet[Product]) -> QuerySet[Product]:
    """Products with brand, category and photos (primary first) loaded in a fixed number of queries."""
    return queryset.select_related("brand", "category").prefetch_related(
        Prefetch("images", queryset=ProductImage.objects.order_by("-is_primary", "position", "id"))
    )


def _in_subtree(category: Category) -> Q:
    return Q(category__path=category.path) | Q(category__path__startswith=category.path + Category.PATH_SEPARATOR)


def category_exists(path: str) -> bool:
    """True when ``path`` (root first, e.g. ``Home Furnishing > Bath Linen``) names a node of the category tree."""
    return Category.objects.filter(path=path.strip()).exists()


def category_tiles(*, limit: int = 12) -> list[CategoryTile]:
    """Top-level categories with at least one product, largest first, each with its best-rated photo."""
    tiles = []
    for root in Category.objects.filter(parent__isnull=True):
        products = Product.objects.filter(_in_subtree(root))
        count = products.count()
        if not count:
            continue
        image = (
            ProductImage.objects.filter(product__in=products)
            .order_by("-is_primary", "-product__rating", "product_id", "position")
            .first()
        )
        tiles.append(CategoryTile(category=root, product_count=count, image=image))
    tiles.sort(key=lambda t: (-t.product_count, t.category.name))
    return tiles[:limit]


def products_top_rated(*, limit: int = 12) -> list[Product]:
    """Best-rated products that have a price and a photo, for the home page (ties: newest first)."""
    queryset = (
        Product.objects.filter(rating__isnull=False, price__isnull=False, images__isnull=False)
        .distinct()
        .order_by("-rating", "-created_at", "id")
    )
    return list(_with_images(queryset)[:limit])


def product_get(*, product_id: int) -> Product:
    """One product for its page, with brand, category and photos.

    Raises:
        Http404: no product has this id.
    """
    if not 0 < product_id <= MAX_ID:
        raise Http404(f"No product with id {product_id}.")
    product = _with_images(Product.objects.filter(pk=product_id)).first()
    if product is None:
        raise Http404(f"No product with id {product_id}.")
    return product
