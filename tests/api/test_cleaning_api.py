"""Products written through the API and the bulk upload are cleaned as imported ones are."""

from __future__ import annotations

from django.core.files.base import ContentFile

from shop.models import Brand, Product


def test_a_product_sent_as_json_is_cleaned_and_its_brand_matched(world):
    # given: the brand exists in another spelling
    Brand.objects.create(name="Acme Home")
    # when
    response = world.client("merchant_a").post(
        "/api/products/",
        {"title": "Acme  cotton towel &amp; napkin", "brand": "ACME-home",
         "description": "Soft and thick cotton towel.\nSoft and thick cotton towel.",
         "specifications": {"Material": "Cotton", "Pattern": "NA", "Size": "-"}},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "Acme cotton towel & napkin"
    assert body["brand"] == "Acme Home" and Brand.objects.filter(key="acmehome").count() == 1
    assert body["description"] == "Soft and thick cotton towel."
    assert body["specifications"] == {"Material": "Cotton"}


def test_a_change_sent_as_json_is_cleaned_too(world):
    # when
    response = world.client("merchant_a").patch(
        f"/api/products/{world.product_a.pk}/", {"specifications": {"Colour": "null", "Weave": "Terry"}}, format="json",
    )
    # then
    assert response.status_code == 200 and response.json()["specifications"] == {"Weave": "Terry"}


def test_a_title_that_is_only_junk_is_a_400_on_the_title(world):
    # when
    response = world.client("merchant_a").post("/api/products/", {"title": "&nbsp;\ufffd"}, format="json")
    # then
    assert response.status_code == 400 and response.json()["error"]["field"] == "title"
    assert not Product.objects.filter(title="").exists()


def test_a_bulk_upload_row_is_cleaned_and_kept_as_uploaded(world):
    # given
    csv_text = "external_id,title,description,brand\nacme-50,Acme  towel,Thick cotton towel for you.\u00a0Thick cotton towel for you.,acme\n"
    # when
    response = world.client("merchant_a").post(
        "/api/products/bulk/", {"csv": ContentFile(csv_text.encode(), name="products.csv")}, format="multipart",
    )
    # then
    assert response.status_code == 200 and response.json()["created"] == 1, response.content
    product = Product.objects.get(external_id="acme-50")
    assert (product.title, product.description) == ("Acme towel", "Thick cotton towel for you.")
    assert product.source_row == {"external_id": "acme-50", "title": "Acme  towel",
                                  "description": "Thick cotton towel for you.\u00a0Thick cotton towel for you.", "brand": "acme"}
