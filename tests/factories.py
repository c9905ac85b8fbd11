"""factory_boy factories for catalog rows and engine documents.

Vectors are deterministic random unit vectors (seeded by the document id and field name), so a
test can rebuild the exact vector of any document with :func:`unit_vector`.
"""

from __future__ import annotations

import io
import zlib
from decimal import Decimal

import factory
import numpy as np
from PIL import Image

from search.backends.base import SearchDocument
from shop.models import Brand, Category, Product

#: Small dimensions for engine tests: high enough that random unit vectors are far apart.
TEST_DIMS = {"text": 16, "image": 24, "fused": 16}


def unit_vector(dim: int, *seed: int | str) -> np.ndarray:
    """A deterministic random L2-normalised float32 vector of ``dim`` dimensions."""
    key = [zlib.crc32(str(s).encode()) for s in seed]
    v = np.random.default_rng(key).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def vectors_for(doc_id: int, dims: dict[str, int] = TEST_DIMS, *, fields: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Vectors of document ``doc_id`` for ``fields`` (all fields by default)."""
    return {name: unit_vector(dim, doc_id, name) for name, dim in dims.items() if fields is None or name in fields}


class SearchDocumentFactory(factory.Factory):
    class Meta:
        model = SearchDocument

    id = factory.Sequence(lambda n: 10_000 + n)
    external_id = factory.LazyAttribute(lambda d: f"ext-{d.id}")
    title = factory.Sequence(lambda n: f"Product {n}")
    brand = ""
    category_path = factory.LazyFunction(list)
    description = ""
    price = None
    rating = None
    vectors = factory.LazyAttribute(lambda d: vectors_for(d.id))


def photo_bytes(colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (96, 96), fmt: str = "JPEG", *, seed: int | None = None) -> bytes:
    """A small real photo made with Pillow: a solid colour, or noise when ``seed`` is given."""
    if seed is None:
        image = Image.new("RGB", size, colour)
    else:
        pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Brand {n}")


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("parent", "name")

    name = factory.Sequence(lambda n: f"Category {n}")
    parent = None


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    external_id = factory.Sequence(lambda n: f"test-{n}")
    title = factory.Sequence(lambda n: f"Test product {n}")
    description = "A product made for a test."
    brand = factory.SubFactory(BrandFactory)
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("499.00")
    rating = 4.0
