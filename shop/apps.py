from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from shop import (
            signals,  # noqa: F401  (connects the indexing signals)
            tokens,  # noqa: F401  (revokes API tokens when a password changes)
        )
