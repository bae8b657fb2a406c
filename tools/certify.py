"""rdm-certify: certified L2 robustness of a checkpoint by randomized smoothing (Cohen et al. 2019)."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli

app = cli.make_app("Certify a checkpoint by randomized smoothing: per-row certified L2 radii (CERTIFY, "
                   "Clopper–Pearson, abstentions counted) and certified accuracy at L2 radii, among them "
                   "the L2 ball containing each --eps L∞ ball.")


@app.command(epilog="Examples: rdm-certify noise-0.25.ckpt test.h5 --sigma 0.25 --eps 0.005 -o cert.json  |  "
                    "rdm-certify m.ckpt test.h5 --sigma 0.12 --n 10000 --shard 0/4 -o part0.json; "
                    "rdm-certify --merge part0.json part1.json part2.json part3.json -o cert.json")
def certify(
    model: Annotated[Path, typer.Argument(help="checkpoint (cnn or purified), trained with noise of --sigma "
                                          "(rdm-advtrain --recipe gaussian); with --merge the first part",
                                          show_default=False)],
    sets: Annotated[Optional[list[Path]], typer.Argument(help="the set to certify; with --merge the other "
                                                         "parts", show_default=False)] = None,
    sigma: Annotated[Optional[float], typer.Option("--sigma", help="noise std on [0, 1] pixels")] = None,
    n: Annotated[int, typer.Option("--n", max=bounds.MAX_SAMPLES, help="noise samples for the estimate")] = 100_000,
    n0: Annotated[int, typer.Option("--n0", max=bounds.MAX_SAMPLES, help="noise samples to pick the class")] = 100,
    alpha: Annotated[float, typer.Option("--alpha", help="failure probability per row")] = 0.001,
    eps: Annotated[Optional[list[float]], typer.Option("--eps", help="also report the L2 radius ε·√d "
                                                       "containing this L∞ ball; repeatable")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", max=bounds.MAX_BATCH, help="noisy copies per forward pass")] = 1000,
    shard: Annotated[Optional[str], typer.Option("--shard", help="i/n: certify rows [i·N/n, (i+1)·N/n) "
                                                 "only; writes a part for --merge")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="combine shard parts (JSON) into one report")] = False,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar=cli.OUT, help="write the JSON report here (- for stdout)")] = None,
    as_json: cli.JsonOpt = False,
    device: cli.DeviceOpt = "auto",
    seed: cli.SeedOpt = 0,
    quiet: cli.QuietOpt = False,
    debug: cli.DebugOpt = False,
):
    """Certify every row of SET (or a shard's rows); a summary on stderr, JSON with -o or --json."""
    with cli.guard(debug):
        from rdm.evaluation import certify as cert
        from rdm.data.atomic import atomic_output
        from rdm.data.guard import is_stdout
        from rdm.data.shards import parse_shard
        from rdm.errors import RdmError, UsageError

        if as_json and is_stdout(output):
            raise UsageError("-o - and --json both print the report on stdout; give one")
        if merge:
            if shard or sigma is not None or eps:
                raise UsageError("--merge takes only the part files and -o")
            parts = [model, *(sets or [])]
            if output is not None:
                cli.check_output_path(output, parts)
            report = cert.merge_certificate_files(parts)
        else:
            if not sets or len(sets) != 1:
                raise UsageError("expected MODEL.ckpt and one SET.h5")
            if sigma is None:
                raise UsageError("--sigma is required (the noise the model was trained with)")
            try:
                cert.check_params(sigma, n0, n, alpha, batch_size)
            except RdmError as e:
                raise UsageError(str(e)) from None
            for e in eps or []:
                if not 0 <= e <= 1:
                    raise UsageError(f"--eps must lie in [0, 1], got {e:g}")
            if output is not None:
                cli.check_output_path(output, [model, *sets])
            with cli.progress(disable=quiet) as prog:
                report = cert.certify_set(model, sets[0], sigma=sigma, n0=n0, n=n, alpha=alpha,
                                          batch_size=batch_size, seed=seed, device=cli.resolve_device(device),
                                          shard=parse_shard(shard), eps=eps or [], progress=prog)
        if not quiet:
            acc = ", ".join(f"r={r}: {v:.1%}" for r, v in report["certified_accuracy"].items())
            cli.say(f"certified accuracy ({len(report['per_row']['rows'])} rows, abstain "
                    f"{report['abstain']:.1%}): {acc}")
        if output is not None:
            with atomic_output(output) as tmp:
                tmp.write_text(json.dumps(report, indent=1) + "\n")
        if as_json:
            cli.emit(report, as_json=True)
        elif output is not None and not is_stdout(output):
            cli.emit(output)


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
