"""``manage.py train_fusion``: train a fusion head on this catalog and put it in service."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table

from mlmodels import head as fusion_head
from search.embedding import spaces
from search.embedding.training import FusionTrainingError, fusion_head_train


class Command(BaseCommand):
    help = (
        "Train the text-photo fusion head on the catalog's stored embeddings, report held-out text->photo "
        "recall@1/10 and nDCG@10 beside the zero-shot bridge, save a versioned artefact and activate it if it "
        "beats the bridge. Run `manage.py reindex` afterwards: search switches heads when the new index is swapped in."
    )

    def add_arguments(self, parser):
        parser.add_argument("--epochs", type=int, default=fusion_head.DEFAULT_EPOCHS, help=f"Training epochs (default {fusion_head.DEFAULT_EPOCHS})")
        parser.add_argument("--dim", type=int, default=fusion_head.DEFAULT_DIM, help=f"Dimension of the shared space (default {fusion_head.DEFAULT_DIM})")
        parser.add_argument("--kind", choices=fusion_head.HEAD_KINDS, default="linear", help="Projection: linear (default) or mlp")
        parser.add_argument("--holdout", type=float, default=0.2, help="Share of products held out to judge the head (default 0.2)")
        parser.add_argument("--min-products", type=int, default=None, help="Fewest products with photos to train on (default: FUSION_MIN_PRODUCTS)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="Default: ENCODER_DEVICE")
        parser.add_argument("--activate", action="store_true", default=True, help="Activate the head if it beats the bridge (default)")
        parser.add_argument("--no-activate", dest="activate", action="store_false", help="Save the head without activating it")

    def handle(self, *args, **opts):
        if opts["epochs"] < 1 or opts["dim"] < 1:
            raise CommandError("--epochs and --dim must be at least 1")
        if not 0 < opts["holdout"] < 1:
            raise CommandError(f"--holdout must be between 0 and 1 (exclusive); got {opts['holdout']}")
        console = Console(file=self.stdout, width=120)
        in_service = spaces.active_ref().version
        every = max(1, opts["epochs"] // 10)

        def progress(epoch: int, loss: float) -> None:
            if opts["verbosity"] >= 1 and (epoch % every == 0 or epoch == opts["epochs"]):
                console.print(f"epoch {epoch}/{opts['epochs']}: loss {loss:.4f}")

        try:
            report = fusion_head_train(
                epochs=opts["epochs"], dim=opts["dim"], kind=opts["kind"], holdout=opts["holdout"],
                min_products=opts["min_products"], activate=opts["activate"], seed=opts["seed"],
                device=opts["device"], progress=progress,
            )
        except FusionTrainingError as exc:
            raise CommandError(f"{exc.reason} Nothing was trained; {in_service} stays in service.") from exc
        except KeyboardInterrupt:
            raise CommandError(f"Training was interrupted; nothing was saved and {in_service} stays in service.") from None

        held = report.metrics["held_out"]
        table = Table(title=f"Held-out text -> photo: {report.n_held_out} products ({held['share']:.0%}, grouped by title)")
        for col in ("system", "recall@1", "recall@10", "nDCG@10"):
            table.add_column(col, justify="left" if col == "system" else "right")
        for name in ("bridge", "fusion"):
            m = held[name]
            table.add_row(name if name == "bridge" else f"fusion ({report.params['kind']}, {report.params['dim']}-d)",
                          f"{m['recall@1']:.3f}", f"{m['recall@10']:.3f}", f"{m['ndcg@10']:.3f}")
        console.print(table)
        console.print(f"Trained on {report.n_train} products in {report.train_s:.1f} s ({report.train_cpu_s:.1f} s CPU); "
                      f"saved {report.version} to {report.path}.")
        if report.activated:
            self.stdout.write(self.style.SUCCESS(
                f"Activated {report.version}; {report.stale} products have no fused vectors in it yet. Search keeps using "
                f"{report.previous} until `manage.py reindex` swaps in an index built with the new head."
            ))
        else:
            self.stdout.write(self.style.WARNING(f"{report.version} {report.decision}."))
