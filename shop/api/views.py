"""Product endpoints: public reads, merchant writes, photos, indexing state, bulk upload.

Views are thin: they check access (``shop.permissions``), validate with the serializers and
call one service (``shop.merchant_services``, ``shop.services.product_image_add``,
``shop.bulk_upload.products_bulk_upload``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from mlmodels.images import ImageRejected
from search.params import flag
from shop.api.errors import ErrorSerializer
from shop.api.parsers import BoundedJSONParser
from shop.api.serializers import (
    BulkReportSerializer,
    BulkUploadSerializer,
    ImageUploadSerializer,
    IndexStateSerializer,
    ProductImageSerializer,
    ProductSerializer,
    ProductWriteSerializer,
)
from shop.api.throttles import UploadThrottle
from shop.bulk_upload import BulkUploadRejected, products_bulk_upload
from shop.merchant_services import product_create, product_delete, product_update
from shop.models import Merchant, Product, ProductImage
from shop.permissions import IsMerchantStaff, ProductAccess, merchants_of
from shop.services import product_image_add
from shop.uploads import read_upload

#: Largest bulk upload request (CSV + photo zip): 2,000 rows with photos of ~250 KB each.
BULK_MAX_BYTES = 512 * 1024 * 1024

ERRORS = {code: OpenApiResponse(ErrorSerializer, description=text) for code, text in {
    400: "Bad input; the message says which field and why.",
    401: "No credentials, a bad token or an expired token.",
    403: "Signed in, but not allowed (not merchant staff, or another merchant's product).",
    404: "No such product or photo.",
    415: "Wrong content type.",
    429: "Too many requests; see Retry-After.",
}.items()}


def _errors(*codes: int) -> dict:
    return {c: ERRORS[c] for c in codes}


def owning_merchant(request: Request, data: dict) -> Merchant | None:
    """The merchant a new product (or upload) belongs to: the one named, or the user's only one.

    A superuser who names none makes catalog products (no merchant), like the imported ones.

    Raises:
        ValidationError: the user is on several merchants' staff and named none.
    """
    if "merchant" in data:
        return data["merchant"]
    if request.user.is_superuser:
        return None  # a catalog product, like the imported ones
    own = list(merchants_of(request.user)[:6])
    if len(own) == 1:
        return own[0]
    hint = ", ".join(m.slug for m in own[:5])
    raise ValidationError({"merchant": f"You are on the staff of several merchants; say which one owns the products in 'merchant' (one of: {hint})."})


@extend_schema_view(
    list=extend_schema(
        summary="List products",
        parameters=[
            OpenApiParameter("merchant", str, description="Only this merchant's products (slug)."),
            OpenApiParameter("mine", bool, description="Only products you may change (merchant staff)."),
        ],
        responses={
            200: ProductSerializer(many=True), **_errors(400, 429),
            404: OpenApiResponse(ErrorSerializer, description="The page is past the last page (`error.field` is `page`)."),
        },
    ),
    retrieve=extend_schema(summary="One product", responses={200: ProductSerializer, **_errors(404, 429)}),
    create=extend_schema(
        summary="Add a product (merchant staff)", request=ProductWriteSerializer,
        responses={201: ProductSerializer, **_errors(400, 401, 403, 415, 429)},
    ),
    update=extend_schema(
        summary="Replace a product (its merchant's staff)", request=ProductWriteSerializer,
        responses={200: ProductSerializer, **_errors(400, 401, 403, 404, 415, 429)},
    ),
    partial_update=extend_schema(
        summary="Change some fields of a product (its merchant's staff)", request=ProductWriteSerializer,
        responses={200: ProductSerializer, **_errors(400, 401, 403, 404, 415, 429)},
    ),
    destroy=extend_schema(summary="Delete a product (its merchant's staff)", responses={204: None, **_errors(401, 403, 404, 429)}),
)
class ProductViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Products: anyone reads; merchant staff create; a product's merchant's staff change and delete it."""

    serializer_class = ProductSerializer
    permission_classes = [ProductAccess]
    parser_classes = [BoundedJSONParser]
    owner_only_actions = ("index_state",)

    def get_queryset(self):
        queryset = (
            Product.objects.select_related("brand", "category", "merchant")
            .prefetch_related(Prefetch("images", queryset=ProductImage.objects.order_by("-is_primary", "position", "id")))
            .order_by("-created_at", "-id")
        )
        if self.action == "list":
            merchant = self.request.query_params.get("merchant", "").strip()
            if merchant:
                queryset = queryset.filter(merchant__slug=merchant[:220])
            mine = flag(self.request.query_params.get("mine", ""))
            if mine is None:
                raise ValidationError({"mine": "mine must be true or false."})
            if mine:
                if not self.request.user.is_authenticated:
                    raise ValidationError({"mine": "Sign in to list your own products."})
                if not self.request.user.is_superuser:
                    queryset = queryset.filter(merchant__staff=self.request.user)
        return queryset

    def initialize_request(self, request, *args, **kwargs):
        drf_request = super().initialize_request(request, *args, **kwargs)
        if self.action == "bulk":
            # A CSV and a zip may exceed the photo size limit that other upload handlers enforce;
            # their own limits are checked in shop.bulk_upload (rows, CSV bytes, each photo).
            request.upload_handlers = [MemoryFileUploadHandler(request), TemporaryFileUploadHandler(request)]
        return drf_request

    def get_throttles(self):
        throttles = super().get_throttles()
        return throttles + [UploadThrottle()] if self.request.method not in ("GET", "HEAD", "OPTIONS") else throttles

    def _out(self, product: Product, code: int = status.HTTP_200_OK) -> Response:
        product = self.get_queryset().get(pk=product.pk)
        return Response(ProductSerializer(product, context=self.get_serializer_context()).data, status=code)

    def create(self, request: Request) -> Response:
        serializer = ProductWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        merchant = owning_merchant(request, data)
        data.pop("merchant", None)
        return self._out(product_create(merchant=merchant, **data), status.HTTP_201_CREATED)

    def update(self, request: Request, pk=None, partial: bool = False) -> Response:
        product = self.get_object()
        serializer = ProductWriteSerializer(instance=product, data=request.data, partial=partial, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return self._out(product_update(product=product, **serializer.validated_data))

    def partial_update(self, request: Request, pk=None) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk=None) -> Response:
        product_delete(product=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Indexing state of a product (its merchant's staff)",
        responses={200: IndexStateSerializer, **_errors(401, 403, 404, 429)},
    )
    @action(detail=True, methods=["get"], url_path="index-state")
    def index_state(self, request: Request, pk=None) -> Response:
        return Response(IndexStateSerializer(self.get_object()).data)

    @extend_schema(
        methods=["GET"], summary="Photos of a product", responses={200: ProductImageSerializer(many=True), **_errors(404, 429)},
    )
    @extend_schema(
        methods=["POST"], summary="Add a photo (its merchant's staff)", request={"multipart/form-data": ImageUploadSerializer},
        description=(
            "The photo's type is detected from its content, not its name; it is refused above "
            f"{settings.MAX_IMAGE_BYTES // 1048576} MB or {settings.MAX_IMAGE_PIXELS // 1_000_000} megapixels, "
            "then stored re-encoded as JPEG with its EXIF orientation applied and all metadata removed, "
            "under a random name."
        ),
        responses={201: ProductImageSerializer, **_errors(400, 401, 403, 404, 415, 429)},
    )
    @action(detail=True, methods=["get", "post"], url_path="images", parser_classes=[MultiPartParser], pagination_class=None)
    def images(self, request: Request, pk=None) -> Response:
        product = self.get_object()
        if request.method == "GET":
            images = product.images.order_by("-is_primary", "position", "id")
            return Response(ProductImageSerializer(images, many=True, context=self.get_serializer_context()).data)
        serializer = ImageUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["image"]
        data = read_upload(upload, "image", settings.MAX_IMAGE_BYTES)
        try:
            image = product_image_add(
                product=product, data=data, source_name=upload.name or "",
                make_primary=True if serializer.validated_data["make_primary"] else None,
            )
        except ImageRejected as exc:
            raise ValidationError({"image": exc.reason}, code="image_rejected") from None
        if serializer.validated_data.get("alt_text"):
            ProductImage.objects.filter(pk=image.pk).update(alt_text=serializer.validated_data["alt_text"])
            image.refresh_from_db()
        return Response(ProductImageSerializer(image, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove a photo (its merchant's staff)",
        parameters=[OpenApiParameter("image_id", int, OpenApiParameter.PATH)],
        responses={204: None, **_errors(401, 403, 404, 429)},
    )
    @action(detail=True, methods=["delete"], url_path=r"images/(?P<image_id>[0-9]+)")
    def image_delete(self, request: Request, pk=None, image_id: str | None = None) -> Response:
        product = self.get_object()
        image = product.images.filter(pk=int(image_id)).first()
        if image is None:
            raise NotFound(f"Product {product.pk} has no photo {image_id}.")
        was_primary = image.is_primary
        image.delete()
        if was_primary:
            successor = product.images.order_by("position", "id").first()
            if successor is not None:
                ProductImage.objects.filter(pk=successor.pk).update(is_primary=True)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Bulk upload: a CSV of products and a zip of their photos (merchant staff)",
        request={"multipart/form-data": BulkUploadSerializer},
        description=(
            "One result per CSV row (numbered as a spreadsheet shows it, header = row 1): created, "
            "updated (same external_id) or error with the reason. Each row is written in its own "
            "transaction, so a bad row leaves nothing behind and the others go through. Written "
            "products are indexed in the background."
        ),
        responses={200: BulkReportSerializer, **_errors(400, 401, 403, 415, 429)},
    )
    @action(detail=False, methods=["post"], url_path="bulk", permission_classes=[IsMerchantStaff], parser_classes=[MultiPartParser])
    def bulk(self, request: Request) -> Response:
        raw_size = str(request.META.get("CONTENT_LENGTH") or "0")
        size = int(raw_size) if raw_size.isdigit() else 0
        if size > BULK_MAX_BYTES:
            raise ValidationError(
                {"images": f"The upload is {size / 1048576:.0f} MB; the limit is {BULK_MAX_BYTES // 1048576} MB. Split it into several uploads."}
            )
        serializer = BulkUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "merchant" in data and not request.user.is_superuser and not data["merchant"].staff.filter(pk=request.user.pk).exists():
            raise ValidationError({"merchant": f"You are not on the staff of merchant {data['merchant'].slug!r}."})
        merchant = owning_merchant(request, data)
        csv_data = data["csv"].read(10 * 1024 * 1024 + 1)
        try:
            report = products_bulk_upload(merchant=merchant, csv_data=csv_data, images_zip=data.get("images"), request=request)
        except BulkUploadRejected as exc:
            raise ValidationError({exc.field or "csv": exc.reason}) from None
        return Response(report.as_dict())
