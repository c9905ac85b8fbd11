"""Fill ``ProductImage.width`` and ``height`` where they are empty (photos saved before
``ProductImage.save`` filled them): an empty dimension makes every load of the row open and
parse its photo. Reads only each photo's header (Pillow); a missing or unreadable file is left
empty, as before."""

from django.db import migrations


def fill_dimensions(apps, schema_editor):
    from django.core.files.images import get_image_dimensions

    ProductImage = apps.get_model("shop", "ProductImage")
    storage = ProductImage._meta.get_field("image").storage
    # Names only, never model instances: loading one would parse its photo (the post_init handler).
    empty = ProductImage.objects.filter(width__isnull=True).exclude(image="").values_list("pk", "image")
    for pk, name in empty.iterator(chunk_size=500):
        try:
            with storage.open(name, "rb") as fh:
                width, height = get_image_dimensions(fh)
        except OSError:
            continue
        if width and height:
            ProductImage.objects.filter(pk=pk).update(width=width, height=height)


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0005_state_cache"),
    ]

    operations = [
        migrations.RunPython(fill_dimensions, migrations.RunPython.noop),
    ]
