from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        from search import checks  # noqa: F401  (registers system checks)
        from search.backends import provide_index_spec

        provide_index_spec(_index_spec)


def _index_spec() -> tuple[dict[str, int], dict]:
    """Vector dimensions and the active fusion space for new backends (see ``search.backends``)."""
    # Late: search.embedding imports search.models, which cannot load while the app registry is being populated.
    from search.embedding.encoding import index_spec

    return index_spec()
