"""``manage.py load_demo``: load ``fixtures/demo.json``, index its products, print ready logins.

Idempotent: the fixture names its rows by natural keys (usernames, merchant and brand names,
category paths, product ``external_id``), so loading it again updates the same rows beside an
imported catalog instead of adding copies or overwriting catalog rows.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from shop.models import Merchant, Product
from shop.signals import products_mark_pending

FIXTURE = "demo"
#: The fixture's logins (public demo passwords, documented in fixtures/README.md and the README).
DEMO_LOGINS = (
    ("admin", "bazaar-admin-demo", "superuser: every product, the admin, the analytics"),
    ("merchant", "paperleaf-demo", "staff of Paperleaf Stationers: its products only"),
    ("merchant2", "inkwell-demo", "staff of Inkwell Pens: its products only"),
)


def fixture_product_ids(name: str = FIXTURE) -> list[str]:
    """``external_id`` of every product in ``fixtures/<name>.json``."""
    path = settings.FIXTURE_DIRS[0] / f"{name}.json"
    return [row["fields"]["external_id"] for row in json.loads(path.read_text(encoding="utf-8")) if row["model"] == "shop.product"]


class Command(BaseCommand):
    help = "Load the demo merchants, staff, admin and products (fixtures/demo.json), index the products, print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://localhost:8000", help="Where the site is served (for the printed links)")
        parser.add_argument("--print-only", action="store_true", help="Only check and print the logins")

    def handle(self, *args, **opts):
        if not opts["print_only"]:
            with transaction.atomic():
                call_command("loaddata", FIXTURE, verbosity=0)
                ids = Product.objects.filter(external_id__in=fixture_product_ids()).values_list("pk", flat=True)
                # Fixture rows are saved raw (no signals): mark them pending; indexing runs at the commit.
                marked = products_mark_pending(ids)
            self.stdout.write(f"Loaded fixtures/{FIXTURE}.json: {len(marked)} demo products, indexing enqueued.")
        base = opts["base_url"].rstrip("/")
        self.stdout.write(self.style.SUCCESS(f"Demo logins (public passwords: for the demo only) at {base}/admin/ and POST {base}/api/auth/token/:"))
        for username, password, role in DEMO_LOGINS:
            if authenticate(username=username, password=password) is None:
                raise CommandError(f"The demo login {username!r} does not work; run `manage.py load_demo` to load it again.")
            count = Product.objects.filter(merchant__in=Merchant.objects.filter(staff__username=username)).count()
            products = f" ({count} product{'s' if count != 1 else ''})" if count else ""
            self.stdout.write(f"  {username} / {password}  -  {role}{products}")
