"""The ``multilingual`` judged set: shopper queries in Chinese and Hindi, each with its English twin,
on the Flipkart demo catalog (``CATALOG_DIR/flipkart``), judged by category.

Each intent below was written by hand from the catalog's real category tree: the words a shopper
would type for it in English, Chinese (simplified) and Hindi (Devanagari), and the category
path(s) whose products answer it. A product is relevant (gain 1) when its category path starts
with one of the intent's paths; every other product has gain 0. The same judgments serve the
three queries of an intent, so a language's precision@10 is directly comparable with its English
twin's. Judging by category is coarse on purpose: "men's watch" counts every wrist watch, since
the catalog does not mark who a watch is for.

Query ids are ``<lang>-<nn>`` (``en-07``, ``zh-07``, ``hi-07``): :data:`LANGUAGES` says how the
harness groups them (``search.evaluation.systems``).
"""

from __future__ import annotations

from pathlib import Path

from search.evaluation.judged import Dataset, DatasetError, EvalProduct, EvalQuery
from shop.importers import CatalogFormatError, read_catalog

#: Language code -> name; queries are grouped by their id's prefix.
LANGUAGES = {"en": "English", "zh": "Chinese", "hi": "Hindi"}

#: (category path prefixes, English, Chinese, Hindi), one row per shopper intent.
INTENTS: list[tuple[tuple[str, ...], str, str, str]] = [
    (("Beauty and Personal Care > Fragrances",), "deodorant for men", "男士止汗香体喷雾", "पुरुषों के लिए डियोड्रेंट"),
    (("Beauty and Personal Care > Fragrances",), "body spray perfume", "香水喷雾", "इत्र बॉडी स्प्रे"),
    (("Home Furnishing > Bed Linen > Blankets, Quilts & Dohars",), "warm blanket for winter", "冬天保暖毯子", "सर्दियों के लिए गरम कंबल"),
    (("Home Furnishing > Bed Linen > Blankets, Quilts & Dohars",), "double bed quilt", "双人被子", "डबल बेड की रज़ाई"),
    (("Home Furnishing > Bed Linen > Bedsheets",), "cotton double bed sheet", "纯棉双人床单", "सूती डबल बेडशीट"),
    (("Baby Care > Infant Wear > Baby Girls' Clothes",), "baby girl dress", "女婴连衣裙", "बच्ची की फ्रॉक"),
    (("Baby Care > Infant Wear > Baby Boys' Clothes",), "baby boy clothes", "男婴衣服", "छोटे लड़के के कपड़े"),
    (("Baby Care > Infant Wear",), "clothes for babies", "婴儿衣服", "शिशु के कपड़े"),
    (("Computers > Network Components > Routers",), "wifi router", "无线路由器", "वाईफाई राउटर"),
    (("Computers > Network Components > Routers",), "internet router for home", "家用网络路由器", "घर के लिए इंटरनेट राउटर"),
    (("Computers > Laptop Accessories > USB Gadgets",), "usb fan for mobile", "手机USB小风扇", "मोबाइल के लिए यूएसबी पंखा"),
    (("Computers > Laptop Accessories > Batteries",), "laptop battery", "笔记本电脑电池", "लैपटॉप की बैटरी"),
    (("Computers > Laptop Accessories > Adapters", "Computers > Laptop Accessories > Laptop Adapters"),
     "laptop charger adapter", "笔记本电脑充电器", "लैपटॉप चार्जर एडाप्टर"),
    (("Computers > Laptop Accessories",), "laptop accessories", "笔记本电脑配件", "लैपटॉप के सामान"),
    (("Home Decor & Festive Needs > Showpieces", "Home Decor & Festive Needs > Showpiece"),
     "decorative showpiece", "装饰摆件", "सजावटी शोपीस"),
    (("Home Decor & Festive Needs > Table Decor & Handicrafts",), "handicraft table decoration", "手工艺桌面装饰品", "हस्तशिल्प मेज़ सजावट"),
    (("Home Decor & Festive Needs > Wall Decor & Clocks",), "wall decoration", "墙面装饰", "दीवार की सजावट"),
    (("Home Decor & Festive Needs > Decorative Lighting & Lamps",), "decorative lights", "装饰灯串", "सजावटी रोशनी"),
    (("Home Decor & Festive Needs > Flowers, Plants & Vases",), "artificial plant with vase", "仿真植物花瓶", "नकली पौधा और फूलदान"),
    (("Kitchen & Dining > Coffee Mugs",), "coffee mug", "咖啡杯", "कॉफ़ी मग"),
    (("Kitchen & Dining > Coffee Mugs",), "printed mug gift", "印花马克杯礼物", "छपा हुआ मग उपहार"),
    (("Kitchen & Dining > Cookware",), "cooking pan", "炒锅", "खाना पकाने का पैन"),
    (("Kitchen & Dining > Cookware",), "non stick cookware", "不粘锅具", "नॉन स्टिक बर्तन"),
    (("Kitchen & Dining > Kitchen Tools",), "pizza cutter", "披萨刀", "पिज़्ज़ा कटर"),
    (("Kitchen & Dining > Containers & Bottles",), "water bottle", "水瓶", "पानी की बोतल"),
    (("Kitchen & Dining > Bar & Glassware",), "wine glasses", "酒杯", "शराब के गिलास"),
    (("Kitchen & Dining > Lighting",), "led bulb", "节能灯泡", "एलईडी बल्ब"),
    (("Watches > Wrist Watches",), "men's wrist watch", "男士手表", "पुरुषों की घड़ी"),
    (("Watches > Wrist Watches",), "women's watch", "女士手表", "महिलाओं की घड़ी"),
    (("Watches > Wrist Watches",), "analog watch for boys", "男孩指针手表", "लड़कों की एनालॉग घड़ी"),
    (("Home Furnishing > Curtains & Accessories",), "door curtains", "门帘", "दरवाज़े के पर्दे"),
    (("Home Furnishing > Bath Linen",), "cotton bath towel", "纯棉浴巾", "सूती तौलिया"),
    (("Home Furnishing > Cushions, Pillows & Covers",), "cushion cover", "靠垫套", "कुशन कवर"),
    (("Home Furnishing > Floor Coverings",), "carpet rug", "地毯", "कालीन"),
    (("Home Furnishing > Living",), "sofa cover", "沙发套", "सोफ़ा कवर"),
    (("Home Furnishing > Kitchen & Dining Linen",), "table cover", "桌布", "मेज़पोश"),
    (("Baby Care > Baby Bath & Skin",), "baby bath towel", "婴儿浴巾", "बच्चे का नहाने का तौलिया"),
    (("Baby Care > Baby Bedding",), "baby blanket", "婴儿毯", "बच्चे का कंबल"),
    (("Baby Care > Baby & Kids Gifts",), "stickers for kids", "儿童贴纸", "बच्चों के स्टिकर"),
    (("Baby Care > Diapering & Potty Training",), "cloth diapers", "布尿布", "कपड़े के डायपर"),
    (("Baby Care > Feeding & Nursing",), "baby sipper cup", "婴儿学饮杯", "बच्चों का सिपर कप"),
    (("Beauty and Personal Care > Makeup",), "makeup", "化妆品", "मेकअप का सामान"),
    (("Beauty and Personal Care > Makeup > Lips",), "lipstick", "口红", "लिपस्टिक"),
    (("Beauty and Personal Care > Hair Care",), "hair conditioner", "护发素", "बालों का कंडीशनर"),
    (("Beauty and Personal Care > Body and Skin Care",), "sunscreen gel", "防晒霜", "सनस्क्रीन जेल"),
    (("Beauty and Personal Care > Combos and Kits",), "beauty combo kit", "美妆套装", "सौंदर्य कॉम्बो किट"),
]


def intent_queries() -> list[EvalQuery]:
    """Every query: ``en-nn``, ``zh-nn``, ``hi-nn`` for intent ``nn`` (1-based)."""
    out = []
    for n, (_, en, zh, hi) in enumerate(INTENTS, start=1):
        out += [EvalQuery(id=f"{lang}-{n:02d}", text=text) for lang, text in (("en", en), ("zh", zh), ("hi", hi))]
    return out


def query_language(query_id: str) -> str:
    """``"zh"`` for ``zh-07``."""
    return query_id.split("-", 1)[0]


def load_multilingual(folder: Path) -> Dataset:
    """The Flipkart catalog (``folder`` in the format of ``CATALOG_DIR/flipkart``) with the intents' queries.

    Products the importer would skip (no price, no photo) are left out, as a shop would not have
    them. Products keep their photos, so the fused vectors are those the storefront indexes.

    Raises:
        DatasetError: ``products.csv`` missing, or an intent whose category matches no product
            (a catalog that is not the Flipkart sample).
    """
    try:
        rows = [r for r in read_catalog("flipkart", folder) if not r.skip_reason]
    except CatalogFormatError as exc:
        raise DatasetError(str(exc)) from exc
    products = [
        EvalProduct(id=i, external_id=r.external_id, title=r.title, description=r.description, brand=r.brand,
                    category_path=list(r.category_path), image_path=r.image_path)
        for i, r in enumerate(rows, start=1)
    ]
    queries = intent_queries()
    qrels: dict[str, dict[int, float]] = {}
    for n, (paths, *_texts) in enumerate(INTENTS, start=1):
        relevant = {p.id: 1.0 for p in products if any(_under(p.category_path, path) for path in paths)}
        if not relevant:
            raise DatasetError(f"{folder}: no product under {' or '.join(paths)} (intent {n}); is it the Flipkart catalog?")
        for lang in LANGUAGES:
            qrels[f"{lang}-{n:02d}"] = relevant
    sizes = sorted(len(g) for q, g in qrels.items() if q.startswith("en-"))
    return Dataset(
        name="multilingual", source=folder, products=products, queries=queries, qrels=qrels,
        groups={q.id: query_language(q.id) for q in queries},
        notes=[
            f"{len(INTENTS)} intents written by hand, each as an English, a Chinese and a Hindi query; "
            "relevant = the product's category path starts with the intent's category (gain 1).",
            f"Relevant products per intent: median {sizes[len(sizes) // 2]}, fewest {sizes[0]} "
            f"({sum(s < 10 for s in sizes)} intents have fewer than 10, so their best precision@10 is below 1).",
        ],
    )


def _under(category_path: list[str], prefix: str) -> bool:
    parts = [p.strip() for p in prefix.split(">")]
    return category_path[: len(parts)] == parts
