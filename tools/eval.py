"""rdm-eval: metrics of a checkpoint on clean and adversarial sets, protocol named."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli
from rdm.cli.options import AttackFlags, MergeOpt, Report, Run, ShardOpt

app = cli.make_app("Evaluate a checkpoint on sets: accuracy, balanced accuracy, P/R/F1, confusion, "
                   "attack success, norms, SSIM/PSNR; protocol clean / transfer / white-box.")


@app.command(epilog="Examples: rdm-eval rdmaa.ckpt test.h5 test-fgsm-0.005.h5 --json  |  "
                    "rdm-eval rdmaa.ckpt test.h5 --attack pgd --eps 0.005 --steps 50 --restarts 5 "
                    "--random-start -o whitebox.json  |  rdm-eval m.ckpt test.h5 --attack pgd --eps 0.005 "
                    "--shard 0/2 -o part0.json; rdm-eval --merge part0.json part1.json -o metrics.json")
def evaluate(
    model: Annotated[Path, typer.Argument(help="checkpoint (cnn or purified); with --merge the first part",
                                          show_default=False)],
    sets: Annotated[Optional[list[Path]], typer.Argument(help="clean and/or adversarial sets; with --merge "
                                                         "the other parts", show_default=False)] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="clean source of the adversarial "
                                                   "sets (default: from their provenance)")] = None,
    flags: AttackFlags = None,
    batch_size: Annotated[int, typer.Option("--batch-size", max=bounds.MAX_BATCH)] = 256,
    shard: ShardOpt = None,
    merge: MergeOpt = False,
    report_to: Report = None,
    rows: Annotated[Optional[Path], typer.Option("--rows", metavar=cli.OUT, help="also write the per-row results as CSV "
                                                 "(.parquet: Parquet, needs pyarrow)")] = None,
    precision: cli.PrecisionOpt = "fp32",
    run: Run = None,
):
    """Evaluate MODEL on each SET; a table on stderr; on stdout the path of -o, JSON with --json,
    else one summary line per result."""
    from rdm.api import eval as eval_api
    from rdm.data.shards import parse_shard
    from rdm.errors import UsageError

    with cli.guard(run.debug):
        if merge:
            cli.merge_only(flags.given or shard or source is not None)
            parts = [model, *(sets or [])]
            report_to.check(parts, [("--rows", rows)])
            report = eval_api.merge_reports(parts)
        else:
            if not sets:
                raise UsageError("expected MODEL.ckpt and at least one SET.h5")
            if (flags.attack is None) != (not flags.eps):
                raise UsageError("--attack and --eps go together")
            specs, part = flags.specs(run.seed), parse_shard(shard)
            from rdm.data.sets import recorded_sources

            report_to.check([model, *sets, source, *recorded_sources(sets)], [("--rows", rows)])
            with cli.progress(disable=run.quiet) as prog:
                report = eval_api.evaluate(model, sets, source=source, specs=specs, batch_size=batch_size,
                                           device=cli.resolve_device(run.device), progress=prog, shard=part,
                                           seed=run.seed, precision=precision)
        if not run.quiet:
            cli.show(eval_api.render_table(report))
        cli.finish_report(report, report_to, warnings=report["warnings"], rows=rows,
                          summary=eval_api.summary_lines(report))


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
