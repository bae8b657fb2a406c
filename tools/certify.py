"""rdm-certify: certified L2 robustness of a checkpoint by randomized smoothing (Cohen et al. 2019)."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli
from rdm.cli.options import MergeOpt, Report, Run, ShardOpt

app = cli.make_app("Certify a checkpoint by randomized smoothing: per-row certified L2 radii (CERTIFY, "
                   "Clopper–Pearson, abstentions counted) and certified accuracy at L2 radii, among them "
                   "the L2 ball containing each --eps L∞ ball.")


@app.command(epilog="Examples: rdm-certify noise-0.25.ckpt test.h5 --eps 0.005 -o cert.json  |  "
                    "rdm-certify m.ckpt test.h5 --sigma 0.12 --n 10000 --shard 0/4 -o part0.json; "
                    "rdm-certify --merge part0.json part1.json part2.json part3.json -o cert.json")
def certify(
    model: Annotated[Path, typer.Argument(help="checkpoint (cnn or purified), trained with Gaussian noise "
                                          "(rdm-advtrain --recipe gaussian); with --merge the first part",
                                          show_default=False)],
    sets: Annotated[Optional[list[Path]], typer.Argument(help="the set to certify; with --merge the other "
                                                         "parts", show_default=False)] = None,
    sigma: Annotated[Optional[float], typer.Option(
        "--sigma", help="noise std on [0, 1] pixels (default: the σ the model was trained with; another "
                        "σ, or a model trained without noise, is warned about)")] = None,
    n: Annotated[int, typer.Option("--n", max=bounds.MAX_SAMPLES, help="noise samples for the estimate")] = 100_000,
    n0: Annotated[int, typer.Option("--n0", max=bounds.MAX_SAMPLES, help="noise samples to pick the class")] = 100,
    alpha: Annotated[float, typer.Option("--alpha", help="failure probability per row")] = 0.001,
    eps: Annotated[Optional[list[float]], typer.Option("--eps", help="also report the L2 radius ε·√d "
                                                       "containing this L∞ ball; repeatable")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", max=bounds.MAX_BATCH, help="noisy copies per forward pass")] = 1000,
    shard: ShardOpt = None,
    merge: MergeOpt = False,
    report_to: Report = None,
    run: Run = None,
):
    """Certify every row of SET (or a shard's rows); a summary on stderr, the path of -o, or JSON
    with --json, on stdout (the summary there when neither is given)."""
    with cli.guard(run.debug):
        from rdm.evaluation import certify as cert
        from rdm.data.shards import parse_shard
        from rdm.errors import RdmError, UsageError

        if merge:
            cli.merge_only(shard or sigma is not None or eps)
            parts = [model, *(sets or [])]
            report_to.check(parts)
            report = cert.merge_certificate_files(parts)
        else:
            if not sets or len(sets) != 1:
                raise UsageError("expected MODEL.ckpt and one SET.h5")
            try:
                cert.check_params(sigma, n0, n, alpha, batch_size)
            except RdmError as e:
                raise UsageError(str(e)) from None
            for e in eps or []:
                if not 0 <= e <= 1:
                    raise UsageError(f"--eps must lie in [0, 1], got {e:g}")
            report_to.check([model, *sets])
            with cli.progress(disable=run.quiet) as prog:
                report = cert.certify_set(model, sets[0], sigma=sigma, n0=n0, n=n, alpha=alpha,
                                          batch_size=batch_size, seed=run.seed, device=cli.resolve_device(run.device),
                                          shard=parse_shard(shard), eps=eps or [], progress=prog, warn=cli.warn)
        line = cert.summary_line(report)
        if not run.quiet:
            cli.say(line)
        cli.finish_report(report, report_to, text=cert.report_text(report), summary=[line])


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
