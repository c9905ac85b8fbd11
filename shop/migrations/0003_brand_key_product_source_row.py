"""Brand.key (one brand per spelling-insensitive name) and Product.source_row.

Existing brands whose names differ only in case, spacing, punctuation or accents are merged
before the unique constraint is added: the brand with the most products keeps its name (ties:
the oldest), the others' products move to it and are marked pending, so the indexing sweeper
re-indexes them with the merged brand.
"""

import unicodedata

from django.db import migrations, models


def _key(name: str) -> str:
    # A frozen copy of shop.cleaning.brand_key as of this migration.
    decomposed = unicodedata.normalize("NFKD", name or "").casefold()
    kept = "".join(
        ch for ch in decomposed
        if not ("\u0300" <= ch <= "\u036f") and (ch.isalnum() or unicodedata.category(ch).startswith("M"))
    )
    return unicodedata.normalize("NFC", kept)


def merge_duplicate_brands(apps, schema_editor):
    Brand = apps.get_model("shop", "Brand")
    Product = apps.get_model("shop", "Product")
    groups: dict[str, list] = {}
    for brand in Brand.objects.order_by("pk"):
        groups.setdefault(_key(brand.name) or brand.name.strip(), []).append(brand)
    for key, brands in groups.items():
        counts = {b.pk: Product.objects.filter(brand=b).count() for b in brands}
        keep = max(brands, key=lambda b: (counts[b.pk], -b.pk))
        others = [b.pk for b in brands if b.pk != keep.pk]
        if others:
            Product.objects.filter(brand__in=others).update(brand=keep, index_state="pending")
            Brand.objects.filter(pk__in=others).delete()
        Brand.objects.filter(pk=keep.pk).update(key=key)


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0002_merchant"),
    ]

    operations = [
        migrations.AddField(
            model_name="brand",
            name="key",
            field=models.CharField(default="", editable=False, max_length=200,
                                   help_text="The name without case, spaces, punctuation or accents (shop.cleaning.brand_key): one brand per key."),
            preserve_default=False,
        ),
        migrations.RunPython(merge_duplicate_brands, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="brand",
            name="key",
            field=models.CharField(editable=False, max_length=200, unique=True,
                                   help_text="The name without case, spaces, punctuation or accents (shop.cleaning.brand_key): one brand per key."),
        ),
        migrations.AddField(
            model_name="product",
            name="source_row",
            field=models.JSONField(blank=True, default=dict, editable=False,
                                   help_text="The row as it came from the catalog file or bulk upload, before cleaning (empty for products typed in)."),
        ),
    ]
