"""Page-number pagination for API lists, with the project's error body for bad page numbers.

DRF's ``PageNumberPagination`` answers 404 "Invalid page." both for a page number that is not
a number (``?page=abc``, ``?page=0``) and for one past the end. Here a malformed page number is
bad input (400, ``field`` = ``page``); a page past the end stays 404, as DRF documents, with a
message that says how many pages there are.
"""

from __future__ import annotations

from django.core.paginator import InvalidPage
from rest_framework import exceptions, pagination

from search.params import whole_number


class PageNotFound(exceptions.NotFound):
    """A page number past the last page (404; the error body names ``page``)."""

    field = "page"


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF page-number pagination: ``?page=N`` (1-based) or ``?page=last``.

    Raises:
        ValidationError: the page is not a whole number from 1 (400, field ``page``).
        PageNotFound: the page is past the last page (404, field ``page``).
    """

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_number(self, request, paginator) -> int:
        raw = (request.query_params.get(self.page_query_param) or "").strip()
        if not raw:
            return 1
        if raw in self.last_page_strings:
            return paginator.num_pages
        number = whole_number(raw, minimum=1)
        if number is None:
            raise exceptions.ValidationError({self.page_query_param: "The page must be a whole number from 1 (or 'last')."})
        return number

    def get_page_size(self, request) -> int:
        """``?page_size=N`` (1 to :attr:`max_page_size`), else the default.

        Raises:
            ValidationError: ``page_size`` is not a whole number in that range (400, field ``page_size``).
        """
        raw = (request.query_params.get(self.page_size_query_param) or "").strip()
        if not raw:
            return self.page_size
        number = whole_number(raw, minimum=1, maximum=self.max_page_size)
        if number is None:
            raise exceptions.ValidationError({self.page_size_query_param: f"page_size must be a whole number from 1 to {self.max_page_size}."})
        return number

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        page_size = self.get_page_size(request)
        if not page_size:
            return None
        paginator = self.django_paginator_class(queryset, page_size)
        number = self.get_page_number(request, paginator)
        try:
            self.page = paginator.page(number)
        except InvalidPage:
            raise PageNotFound(
                f"Page {number} is past the end: the last page is {paginator.num_pages} ({paginator.count} results, {page_size} per page)."
            ) from None
        return list(self.page)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["description"] = "1-based page number; a page past the last answers 404."
                parameter["schema"] = {"type": "integer", "minimum": 1}
            elif parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters
