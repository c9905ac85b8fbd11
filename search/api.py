"""Search endpoints: ``GET /api/search`` (words, filters), ``POST /api/search/image`` (a photo) and
``GET /api/search/image?photo=<token>`` (more pages of a photo search, without a second upload).

Each parses its input with :func:`search.request.parse_search_request` and runs it with
``SearchRequest.run()``, exactly as the storefront does, so a query gives the same products,
the same order and the same error reasons on the web page, through the API and on the
command line.
"""

from __future__ import annotations

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlmodels.types import ImageFeatures
from search.params import flag, whole_number
from search.query import MAX_QUERY_CHARS
from search.request import MAX_PAGE, SearchRequestError, decode_query_photo, parse_search_request
from search.selectors import MATCH_KINDS, SORTS, SearchPage
from shop.api.errors import ErrorSerializer
from shop.api.throttles import SearchAnonThrottle, photo_search_throttles
from shop.query_photos import TOKEN_RE, query_photo_load, query_photo_store, query_photo_ttl
from shop.uploads import read_upload

#: Largest page an API client may ask for.
MAX_PAGE_SIZE = 100


class SearchHitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    title = serializers.CharField()
    brand = serializers.CharField(source="brand.name", default=None, allow_null=True)
    category = serializers.CharField(source="category.path", default=None, allow_null=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    list_price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    rating = serializers.FloatField(allow_null=True)
    image = serializers.SerializerMethodField(help_text="Absolute URL of the primary photo, or null.")
    score = serializers.FloatField(source="search_score", help_text="Final fused score (higher is better).")

    def get_image(self, product) -> str | None:
        image = product.primary_image
        if image is None:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(image.image.url) if request else image.image.url


class SearchHitExplainSerializer(SearchHitSerializer):
    # Not required in the schema: hits carry it only when the request asked for explain=true.
    explain = serializers.DictField(
        source="search_explain", required=False, help_text="Score parts: BM25 and each kNN (raw, rank, contribution); only with explain=true."
    )


class FacetSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()


class SearchPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Products matching in all.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    num_pages = serializers.IntegerField()
    next = serializers.CharField(allow_null=True, help_text="URL of the next page (GET only), or null.")
    previous = serializers.CharField(allow_null=True)
    results = SearchHitExplainSerializer(many=True, help_text="`explain` is present only with explain=true.")
    facets = serializers.DictField(child=FacetSerializer(many=True), help_text="category, brand and price facets with counts.")
    notices = serializers.ListField(child=serializers.CharField(), help_text=(
        "Remarks about the query in plain words: search operators removed, the language, a corrected typo, no match."))
    method = serializers.CharField(help_text="Fusion used: rrf or linear.")
    query = serializers.CharField(help_text=(
        "The words searched: `corrected_query` when a typo was corrected, else the words as typed (search operators removed)."))
    corrected_query = serializers.CharField(allow_null=True, help_text=(
        "The words searched instead of the typed ones when a word of the query is in no product and a catalog word "
        "is one or two edits away (\"cotten towl\" -> \"cotton towel\"); null when the query was searched as typed. "
        "Repeat the request with autocorrect=false to search the typed words (\"Search instead for\")."))
    did_you_mean = serializers.CharField(allow_null=True, help_text=(
        "A correction that was found but not applied (the request had autocorrect=false); null otherwise."))
    match = serializers.ChoiceField(choices=list(MATCH_KINDS), help_text=(
        "What the results are: `text` products holding the words (or a typed identifier, listed first); "
        "`similar` no product holds the words, these are close in meaning; `none` nothing matches (count 0); "
        "`photo` products like the photo; `browse` products by filters alone."))
    took_ms = serializers.FloatField()


FILTER_PARAMETERS = [
    OpenApiParameter("category", str, description="Category path, root first, e.g. 'Home Furnishing > Bath Linen'; includes subcategories."),
    OpenApiParameter("brand", str, many=True, explode=True, description="Brand name; repeat for several (any matches)."),
    OpenApiParameter("price_min", float, description="Lowest price (inclusive), in INR."),
    OpenApiParameter("price_max", float, description="Highest price (inclusive), in INR."),
    OpenApiParameter("sort", str, enum=list(SORTS), description="Order of results (default relevance)."),
    OpenApiParameter("page", int, description=f"1-based page, at most {MAX_PAGE}."),
    OpenApiParameter("page_size", int, description=f"Results per page, 1 to {MAX_PAGE_SIZE} (default {settings.SEARCH_PAGE_SIZE})."),
    OpenApiParameter("explain", bool, description="Add each result's score parts (BM25, kNN ranks and contributions)."),
    OpenApiParameter("fusion", str, enum=["rrf", "linear"], description="Override the fusion method (experiments)."),
    OpenApiParameter("autocorrect", bool, description=(
        "Correct misspelt words (default true); false searches the words as typed and reports the correction as `did_you_mean`.")),
]
ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Unusable input; `error.field` names it and `error.message` says why."),
    429: OpenApiResponse(ErrorSerializer, description="Rate limit reached; see Retry-After."),
    503: OpenApiResponse(ErrorSerializer, description="The search engine cannot answer right now; retry."),
}


def _page_size(params: QueryDict) -> int:
    raw = (params.get("page_size") or "").strip()
    if not raw:
        return settings.SEARCH_PAGE_SIZE
    size = whole_number(raw, minimum=1, maximum=MAX_PAGE_SIZE)
    if size is None:
        raise SearchRequestError(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}.", "page_size")
    return size


def _explain(params: QueryDict) -> bool:
    value = flag(params.get("explain") or "")
    if value is None:
        raise SearchRequestError("explain must be true or false.", "explain")
    return value


def _page_url(request: Request, params: QueryDict, page: int) -> str:
    params = params.copy()
    params["page"] = str(page)
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


def lexical_notices(result: SearchPage) -> list[str]:
    """Plain-words notices for a corrected typo, a suggestion and an empty or meaning-only answer."""
    notices = []
    if result.corrected_query:
        notices.append(f"Showing results for “{result.corrected_query}”; search instead for “{result.typed_query}” with autocorrect=false.")
    if result.match in ("similar", "none"):
        words = result.corrected_query or result.typed_query
        hint = f" Did you mean “{result.suggestion}”?" if result.suggestion else ""
        similar = " These products are close in meaning." if result.match == "similar" else ""
        notices.append(f"No products match “{words}”.{hint}{similar}")
    return notices


def page_response(request: Request, result: SearchPage, *, explain: bool, link_params: QueryDict, extra: dict | None = None) -> Response:
    """The JSON body of a results page (shared by text and photo search).

    Args:
        request: the request answered; ``next`` and ``previous`` are GET URLs on its path.
        result: the page of results.
        explain: add each hit's score parts.
        link_params: the query parameters of ``next`` and ``previous`` (``page`` is replaced).
        extra: more top-level keys (e.g. ``photo``, the token of a photo search).
    """
    hit_serializer = SearchHitExplainSerializer if explain else SearchHitSerializer
    last = min(result.num_pages, MAX_PAGE)
    body = {
        "count": result.total,
        "page": result.page,
        "page_size": result.per_page,
        "num_pages": result.num_pages,
        "next": _page_url(request, link_params, result.page + 1) if result.page < last else None,
        "previous": _page_url(request, link_params, result.page - 1) if 1 < result.page <= last + 1 else None,
        "results": hit_serializer(result.products, many=True, context={"request": request}).data,
        "facets": {name: FacetSerializer(values, many=True).data for name, values in result.facets.items()},
        "notices": [*result.notices, *lexical_notices(result)],
        "method": result.method,
        "query": result.corrected_query or result.typed_query,
        "corrected_query": result.corrected_query,
        "did_you_mean": result.suggestion,
        "match": result.match,
        "took_ms": round(result.took_ms, 2),
        **(extra or {}),
    }
    return Response(body)


class SearchView(APIView):
    """Search products by words, with filters, sorting and pages, ranked like the storefront."""

    permission_classes = [AllowAny]
    throttle_classes = [SearchAnonThrottle]

    @extend_schema(
        operation_id="search_products",
        summary="Search products by words",
        parameters=[
            OpenApiParameter("q", str, description=f"The words, up to {MAX_QUERY_CHARS} characters; may be empty when filters are set."),
            *FILTER_PARAMETERS,
        ],
        responses={200: SearchPageSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        search = parse_search_request(params, per_page=_page_size(params))
        explain = _explain(params)
        return page_response(request, search.run(), explain=explain, link_params=params)


class PhotoSearchPageSerializer(SearchPageSerializer):
    photo = serializers.CharField(help_text=(
        "Token of the photo's encoded features (22 characters), kept for SEARCH_PHOTO_TTL_S seconds after the upload: "
        "`next` and `previous` use it, and GET /api/search/image?photo=<token> searches the same photo again "
        "with other words, filters, sorting or pages."
    ))


class PhotoExpired(APIException):
    """410: a well-formed photo token the cache no longer holds (expired, or never issued)."""

    status_code = 410
    default_code = "photo_expired"
    field = "photo"


def _photo_features(params: QueryDict) -> tuple[str, ImageFeatures]:
    """The token in ``photo`` and the features stored under it.

    Raises:
        ValidationError: no token, or not one this API issues (400, field ``photo``).
        PhotoExpired: the token is well formed but unknown or expired (410).
    """
    token = (params.get("photo") or "").strip()
    if not TOKEN_RE.match(token):
        raise ValidationError({"photo": (
            "Give the 22-character token from the 'photo' field of a POST /api/search/image answer, "
            "or search by a new photo with POST /api/search/image."
        )})
    features = query_photo_load(token)
    if features is None:
        minutes = max(1, query_photo_ttl() // 60)
        raise PhotoExpired(
            f"This photo search is unknown or expired (a photo is kept {minutes} minutes after its upload); "
            "upload the photo again with POST /api/search/image."
        )
    return token, features


class ImageSearchRequestSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="The photo (JPEG, PNG, WebP, GIF, BMP or TIFF; type read from the content).")
    q = serializers.CharField(required=False, allow_blank=True, help_text="Optional words to search with the photo.")
    category = serializers.CharField(required=False, allow_blank=True)
    brand = serializers.ListField(child=serializers.CharField(), required=False)
    price_min = serializers.FloatField(required=False)
    price_max = serializers.FloatField(required=False)
    sort = serializers.ChoiceField(choices=list(SORTS), required=False)
    page = serializers.IntegerField(required=False)
    page_size = serializers.IntegerField(required=False)
    explain = serializers.BooleanField(required=False)


class ImageSearchView(APIView):
    """Search products by a photo (and optional words and filters) sent as multipart/form-data.

    The photo's encoded features are kept under a token (:mod:`shop.query_photos`, the same store
    the storefront's photo search uses) for ``SEARCH_PHOTO_TTL_S`` seconds; ``next`` and
    ``previous`` are ``GET /api/search/image?photo=<token>&page=N`` links, which search with the
    stored features and never encode the photo again.
    """

    permission_classes = [AllowAny]
    parser_classes = [MultiPartParser]

    def get_throttles(self):
        if self.request.method == "POST":  # only an upload runs the image encoder
            return photo_search_throttles()
        return [SearchAnonThrottle()]

    @extend_schema(
        operation_id="search_products_by_photo_token",
        summary="More pages of a photo search (no second upload)",
        description=(
            "Searches again with a photo uploaded earlier to POST /api/search/image, named by the `photo` "
            "token of that answer; its `next` and `previous` links are requests to this endpoint. Words, "
            f"filters, sorting and paging work as in GET /api/search. The token works for {settings.SEARCH_PHOTO_TTL_S} "
            "seconds after the upload; after that the answer is 410 and the photo must be uploaded again."
        ),
        parameters=[
            OpenApiParameter("photo", str, required=True, pattern=TOKEN_RE.pattern, description="The `photo` token of a POST /api/search/image answer."),
            OpenApiParameter("q", str, description="Optional words to search with the photo."),
            *FILTER_PARAMETERS,
        ],
        responses={
            200: PhotoSearchPageSerializer, **ERROR_RESPONSES,
            410: OpenApiResponse(ErrorSerializer, description="The photo token is unknown or expired (`error.code` photo_expired); upload the photo again."),
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        token, features = _photo_features(params)
        per_page, explain = _page_size(params), _explain(params)
        search = parse_search_request(params, image=features, per_page=per_page)
        return page_response(request, search.run(), explain=explain, link_params=params, extra={"photo": token})

    @extend_schema(
        operation_id="search_products_by_photo",
        summary="Search products by a photo",
        request={"multipart/form-data": ImageSearchRequestSerializer},
        responses={
            200: PhotoSearchPageSerializer, **ERROR_RESPONSES,
            415: OpenApiResponse(ErrorSerializer, description="Not multipart/form-data."),
        },
        parameters=[OpenApiParameter("explain", OpenApiTypes.BOOL, description="Add each result's score parts.")],
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("image")
        if upload is None:
            raise ValidationError({"image": "Attach a photo in the 'image' field of a multipart/form-data request."})
        params = request.query_params.copy()
        for key in request.data:
            if key != "image":
                params.setlist(key, [str(v) for v in request.data.getlist(key)])
        per_page, explain = _page_size(params), _explain(params)
        data = read_upload(upload, "image", settings.MAX_IMAGE_BYTES)
        features = decode_query_photo(data)
        search = parse_search_request(params, image=features, per_page=per_page)
        result = search.run()
        token = query_photo_store(features)
        params["photo"] = token
        return page_response(request, result, explain=explain, link_params=params, extra={"photo": token})
