"""``manage.py simulate_clicks [--json OUT] [--sessions N] [--seed S]``: prove the click feedback loop by simulation.

The simulation never touches this shop's data: it re-runs itself in a child process whose
``VAR_DIR`` (SQLite database, search index, cache, media) is a fresh temporary folder, deleted
afterwards. See :mod:`search.clicks.simulation` for the click model and what is measured.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

INNER = "SIMULATE_CLICKS_INNER"


class Command(BaseCommand):
    help = "Simulate shoppers (cascade click model) on CrowdFlower and Grocery; report nDCG@10 and photo top-1 before/after clicks, and attacks."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_out", default="", help="Write the results as JSON to this file")
        parser.add_argument("--sessions", type=int, default=3000, help="Simulated shopper sessions on the text queries (default 3000)")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0); the same seed gives the same result")
        parser.add_argument("--no-photo", action="store_true", help="Skip the Grocery photo part")
        parser.add_argument(
            "--var-dir", default="",
            help="Run in this folder instead of a temporary one, and keep it; a later run with the same folder reuses the indexed catalog",
        )

    def handle(self, *args, **opts):
        if opts["sessions"] < 1:
            raise CommandError("--sessions must be at least 1")
        if not (Path(settings.CATALOG_DIR) / "crowdflower" / "train.csv").is_file():
            raise CommandError(f"{settings.CATALOG_DIR}/crowdflower/train.csv not found; set CATALOG_DIR to the shared data folder")
        if os.environ.get(INNER) == "1":
            return self._inner(opts)
        keep = bool(opts["var_dir"])
        tmp = Path(opts["var_dir"]).resolve() if keep else Path(tempfile.mkdtemp(prefix="simulate-clicks-"))
        tmp.mkdir(parents=True, exist_ok=True)
        out = tmp / "result.json"
        env = {
            **os.environ, INNER: "1", "VAR_DIR": str(tmp), "TEST_VAR_DIR": str(tmp), "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "SEARCH_INDEX_DIR": str(tmp / "search-index"), "MEDIA_ROOT": str(tmp / "media"), "CELERY_BROKER_URL": "",
            "ELASTICSEARCH_URL": "", "CATALOG_DIR": str(settings.CATALOG_DIR),
        }
        cmd = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "simulate_clicks", "--json", str(out),
               "--sessions", str(opts["sessions"]), "--seed", str(opts["seed"])] + (["--no-photo"] if opts["no_photo"] else [])
        try:
            proc = subprocess.run(cmd, env=env, cwd=settings.BASE_DIR, check=False)
            if proc.returncode != 0 or not out.is_file():
                raise CommandError(f"The simulation failed (exit code {proc.returncode}); its output is above")
            result = json.loads(out.read_text())
        finally:
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
        text = json.dumps(result, indent=2)
        if opts["json_out"]:
            Path(opts["json_out"]).write_text(text + "\n")
        self.stdout.write(text)

    def _inner(self, opts):
        # The simulation loads the encoders (torch): only when it runs, not for --help or a bad argument.
        from search.clicks.simulation import SimulationConfig, simulate

        logging.getLogger("search").setLevel(logging.WARNING)
        call_command("migrate", verbosity=0, interactive=False)
        config = SimulationConfig(sessions=opts["sessions"], seed=opts["seed"], photo=not opts["no_photo"])
        result = simulate(config, log=lambda line: self.stderr.write(line))
        Path(opts["json_out"]).write_text(json.dumps(result, indent=2, default=str))
