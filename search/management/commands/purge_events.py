"""``manage.py purge_events [--days N]``: delete search events older than the retention (``CLICK_RETENTION_DAYS``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from search.clicks.aggregates import events_purge


class Command(BaseCommand):
    help = "Delete impressions, clicks, shoppers' photo references and discard counts older than CLICK_RETENTION_DAYS."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Keep this many days instead of CLICK_RETENTION_DAYS")

    def handle(self, *args, **opts):
        try:
            deleted = events_purge(older_than_days=opts["days"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("Deleted " + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in deleted.items()) + ".")
