"""rdm-attack: craft adversarial sets (FGSM, PGD, BIM, APGD-CE, any registered attack) against a checkpoint."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli
from rdm.attacks import options as ao

app = cli.make_app("Craft an adversarial set (L∞, pixel space) against a cnn or purified checkpoint.")


@app.command(epilog="Examples: rdm-attack baseline.ckpt test.h5 --attack pgd --eps 0.005 --alpha 0.002 "
                    "--steps 3 -o test-pgd.h5  |  rdm-attack baseline.ckpt test.h5 --attack fgsm "
                    "--eps 0.002 --eps 0.005 -o 'adv/test-fgsm-{eps}.h5'  |  rdm-attack --merge "
                    "p0.h5 p1.h5 -o adv.h5")
def attack(
    inputs: Annotated[list[Path], typer.Argument(help="MODEL.ckpt SET.h5, or the part files with --merge",
                                                 show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar=cli.OUT, help="output set (- for stdout); with several --eps a "
                                         "pattern with {eps} or a directory")],
    attack: ao.AttackOpt = None,
    eps: ao.EpsOpt = None,
    alpha: ao.AlphaOpt = None,
    steps: ao.StepsOpt = None,
    restarts: ao.RestartsOpt = None,
    random_start: ao.RandomStartOpt = None,
    keep: ao.KeepOpt = None,
    queries: ao.QueriesOpt = None,
    attack_param: ao.ParamOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", max=bounds.MAX_BATCH, help="rows per batch")] = 128,
    shard: Annotated[Optional[str], typer.Option("--shard", help="i/n: attack rows [i·N/n, (i+1)·N/n) only")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="concatenate shard parts into -o")] = False,
    device: cli.DeviceOpt = "auto",
    precision: cli.PrecisionOpt = "fp32",
    seed: cli.SeedOpt = 0,
    quiet: cli.QuietOpt = False,
    debug: cli.DebugOpt = False,
):
    """Attack MODEL.ckpt on SET.h5 and write the adversarial set(s); prints the path(s) written."""
    from rdm.api import attack as attack_api
    from rdm.errors import UsageError
    from rdm.data.guard import is_stdout
    from rdm.data.shards import parse_shard

    command = " ".join(["rdm-attack", *sys.argv[1:]])
    with cli.guard(debug):
        if merge:
            if attack is not None or eps or shard:
                raise UsageError("--merge takes only the part files and -o")
            merged = attack_api.merge_parts(inputs, output, command=command)
            cli.emit([] if is_stdout(merged) else merged)
            return
        if len(inputs) != 2:
            raise UsageError(f"expected MODEL.ckpt SET.h5, got {len(inputs)} argument(s)")
        if attack is None or not eps:
            raise UsageError("--attack and --eps are required")
        specs = ao.specs_from(attack, eps, alpha=alpha, steps=steps, restarts=restarts,
                              random_start=random_start, keep=keep, queries=queries, params=attack_param,
                              seed=seed)
        dev = cli.resolve_device(device)
        args = dict(model=inputs[0], set=inputs[1], attack=attack, eps=eps, alpha=alpha, steps=steps,
                    restarts=1 if restarts is None else restarts, random_start=bool(random_start),
                    keep=keep or "fooled", batch_size=batch_size, shard=shard, device=str(dev), seed=seed,
                    output=output, precision=precision, **({"queries": queries} if queries is not None else {}),
                    **({"attack_param": attack_param} if attack_param else {}))
        with cli.progress(disable=quiet) as prog:
            res = attack_api.attack_set(inputs[0], inputs[1], specs, output, batch_size=batch_size,
                                        device=dev, shard=parse_shard(shard),
                                        command=command, arguments=args, progress=prog,
                                        precision=precision)
        if not quiet:
            for s, p, k in zip(specs, res.paths, res.success):
                rate = k / res.clean_correct if res.clean_correct else float("nan")
                cli.console.print(f"{s!r}: {res.n} rows, success rate {rate:.1%} "
                                  f"({k}/{res.clean_correct} correctly classified) -> {p}")
        cli.emit([p for p in res.paths if not is_stdout(p)])     # -o -: the set itself went to stdout


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
