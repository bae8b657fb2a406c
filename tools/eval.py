"""rdm-eval: metrics of a checkpoint on clean and adversarial sets, protocol named."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli
from rdm.attacks import options as ao

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
    attack: ao.AttackOpt = None,
    eps: ao.EpsOpt = None,
    alpha: ao.AlphaOpt = None,
    steps: ao.StepsOpt = None,
    restarts: ao.RestartsOpt = None,
    random_start: ao.RandomStartOpt = None,
    keep: ao.KeepOpt = None,
    queries: ao.QueriesOpt = None,
    attack_param: ao.ParamOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", max=bounds.MAX_BATCH)] = 256,
    shard: Annotated[Optional[str], typer.Option("--shard", help="i/n: evaluate rows [i·N/n, (i+1)·N/n) "
                                                 "of each set only; writes a part for --merge")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="combine shard parts (JSON) into the report "
                                        "of one unsharded run")] = False,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar=cli.OUT, help="write the JSON report here (- for stdout)")] = None,
    as_json: cli.JsonOpt = False,
    device: cli.DeviceOpt = "auto",
    precision: cli.PrecisionOpt = "fp32",
    seed: cli.SeedOpt = 0,
    quiet: cli.QuietOpt = False,
    debug: cli.DebugOpt = False,
):
    """Evaluate MODEL on each SET; a table on stderr, JSON on stdout with --json, a file with -o."""
    from rdm.api import eval as eval_api
    from rdm.data.atomic import atomic_output
    from rdm.data.guard import is_stdout
    from rdm.data.shards import parse_shard
    from rdm.errors import UsageError
    from rdm.attacks.per_row import dumps

    with cli.guard(debug):
        if as_json and is_stdout(output):
            raise UsageError("-o - and --json both print the report on stdout; give one")
        if merge:
            if attack is not None or eps or shard or source is not None:
                raise UsageError("--merge takes only the part files and -o")
            parts = [model, *(sets or [])]
            if output is not None:
                cli.check_output_path(output, parts)
            report = eval_api.merge_reports(parts)
        else:
            if not sets:
                raise UsageError("expected MODEL.ckpt and at least one SET.h5")
            if (attack is None) != (not eps):
                raise UsageError("--attack and --eps go together")
            specs = ao.specs_from(attack, eps, alpha=alpha, steps=steps, restarts=restarts,
                                  random_start=random_start, keep=keep, queries=queries,
                                  params=attack_param, seed=seed) if attack is not None else []
            part = parse_shard(shard)
            if output is not None:
                from rdm.data.sets import recorded_sources

                cli.check_output_path(output, [model, *sets, source, *recorded_sources(sets)])
            dev = cli.resolve_device(device)
            with cli.progress(disable=quiet) as prog:
                report = eval_api.evaluate(model, sets, source=source, specs=specs, batch_size=batch_size,
                                           device=dev, progress=prog, shard=part, seed=seed,
                                           precision=precision)
        if not quiet:
            from rich.console import Console  # wide enough for the table even when stderr is a file
            Console(stderr=True, highlight=False, width=max(cli.console.width, 150)).print(
                eval_api.render_table(report))
        for w in report["warnings"]:
            cli.console.print(f"warning: {w}", style="yellow")
        if output is not None:
            with atomic_output(output) as tmp:
                tmp.write_text(dumps(report))
        if as_json:
            cli.emit(report, as_json=True)
        elif output is not None and not is_stdout(output):
            cli.emit(output)


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
