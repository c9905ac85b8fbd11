"""``manage.py evaluate {crowdflower,grocery,fashion}``: relevance of the storefront's ranking on judged data."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console

from search.evaluation.datasets import DATA_FOLDERS, DATASETS, DatasetError, load_dataset


class Command(BaseCommand):
    help = (
        "Print nDCG@10 (standard and on condensed lists), MRR@10 and recall@100 of BM25, each kNN and the storefront's fused ranking on a judged "
        "data set (CrowdFlower text queries, Grocery photos, fashion text -> photo), each catalog indexed into a "
        "throwaway engine. Encoder outputs are cached in VAR_DIR/eval-cache."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", choices=(*DATASETS, "fashion_compose"))
        parser.add_argument("--data", type=Path, help="Folder in the format of CATALOG_DIR/<dataset> (default: that folder; "
                                                      "fashion_text reads CATALOG_DIR/fashion)")
        parser.add_argument("--json", type=Path, dest="json_out", help="Write the results as JSON to this file")
        parser.add_argument("--chart", type=Path, help="Save a PNG bar chart comparing the systems")
        parser.add_argument("--run", type=Path, dest="run_out",
                            help="Write each system's ranking as a TREC run file (OUT.trec -> OUT.<system>.trec) and the "
                                 "judgments as OUT.qrels, for trec_eval or ranx")
        parser.add_argument("--split", default="val", help="Grocery: evaluate the photos listed in <split>.txt (default val)")
        parser.add_argument("--sweep", action="store_true",
                            help="Grid-search fusion method, RRF k and weights on a dev half of the queries; report the test half")
        parser.add_argument("--limit", type=int, default=0, help="Evaluate a seeded sample of this many queries")
        parser.add_argument("--clicks", type=int, default=0, metavar="N",
                            help="Text sets: simulate N shopper sessions on a seeded half of the queries, learn from their "
                                 "clicks (click prior, LambdaMART), and score every system on the other half")
        parser.add_argument("--seed", type=int, default=0, help="With --clicks: the seed of the split and the shoppers")

    def handle(self, *args, **opts):
        # The harness loads the encoders (torch): only when an evaluation runs, not for --help or a bad argument.
        from search.evaluation import report
        from search.evaluation.clicks import ClicksConfig
        from search.evaluation.datasets import TEXT_DATASETS
        from search.evaluation.systems import evaluate_dataset

        if opts["limit"] < 0:
            raise CommandError("--limit must be 0 (all queries) or more")
        if opts["clicks"] < 0:
            raise CommandError("--clicks must be 0 (no clicks) or more sessions")
        if opts["clicks"] and opts["dataset"] not in TEXT_DATASETS:
            raise CommandError(f"--clicks needs a text data set ({', '.join(TEXT_DATASETS)}), not {opts['dataset']}")
        if opts["dataset"] == "fashion_compose":  # photo + one word (search.evaluation.fashion_compose)
            from search.evaluation.fashion_compose import evaluate_compose

            with Console(stderr=True).status("evaluating fashion_compose") as status:
                ev = evaluate_compose(opts["data"] or Path(settings.CATALOG_DIR) / "fashion", progress=status.update)
            return self._print(ev, opts, report)
        folder = opts["data"] or Path(settings.CATALOG_DIR) / DATA_FOLDERS.get(opts["dataset"], opts["dataset"])
        try:
            ds = load_dataset(opts["dataset"], folder, split=opts["split"])
        except DatasetError as exc:
            raise CommandError(str(exc)) from exc
        if not ds.queries:
            raise CommandError(f"{folder} holds no queries for {opts['dataset']}.")
        ds = ds.limited(opts["limit"])
        err = Console(stderr=True)
        with err.status(f"evaluating {ds.name}") as status:
            clicks = ClicksConfig(sessions=opts["clicks"], seed=opts["seed"]) if opts["clicks"] else None
            ev = evaluate_dataset(ds, sweep=opts["sweep"], clicks=clicks, progress=lambda msg: status.update(f"{ds.name}: {msg}"))
        self._print(ev, opts, report)

    def _print(self, ev, opts, report):
        console = Console(file=self.stdout, width=170)
        report.print_table(ev, console)
        if opts["json_out"]:
            report.write_json(ev, opts["json_out"])
            console.print(f"JSON written to {opts['json_out']}")
        if opts["run_out"]:
            written = report.write_runs(ev, opts["run_out"])
            console.print(f"TREC qrels and runs written: {', '.join(str(p) for p in written)}")
        if opts["chart"]:
            report.write_chart(ev, opts["chart"])
            console.print(f"Chart saved to {opts['chart']}")
