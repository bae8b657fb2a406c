"""rdm-attack: craft adversarial sets (FGSM, PGD, BIM, APGD-CE, any registered attack) against a checkpoint."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

import sys
from pathlib import Path
from typing import Annotated

import typer

from rdm import bounds, cli
from rdm.cli.options import AttackFlags, MergeOpt, Run, ShardOpt

app = cli.make_app("Craft an adversarial set (L∞, pixel space) against a cnn or purified checkpoint.")


EXAMPLES = ["rdm-attack baseline.ckpt test.h5 --attack pgd --eps 0.005 --alpha 0.002 --steps 3 -o test-pgd.h5",
            "rdm-attack baseline.ckpt test.h5 --attack fgsm --eps 0.002 --eps 0.005 -o 'adv/test-fgsm-{eps}.h5'",
            "rdm-attack --merge p0.h5 p1.h5 -o adv.h5"]


@app.command(epilog="Examples: " + "  |  ".join(EXAMPLES))
def attack(
    inputs: Annotated[list[Path], typer.Argument(help="MODEL.ckpt SET.h5, or the part files with --merge",
                                                 show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar=cli.OUT, help="output set (- for stdout); with several --eps a "
                                         "pattern with {eps} or a directory")],
    flags: AttackFlags,
    batch_size: Annotated[int, typer.Option("--batch-size", max=bounds.MAX_BATCH, help="rows per batch")] = 128,
    shard: ShardOpt = None,
    merge: MergeOpt = False,
    precision: cli.PrecisionOpt = "fp32",
    run: Run = None,
):
    """Attack MODEL.ckpt on SET.h5 and write the adversarial set(s); prints the path(s) written."""
    from rdm.api import attack as attack_api
    from rdm.cli.paths import output_paths
    from rdm.data.shards import parse_shard
    from rdm.errors import UsageError

    command = " ".join(["rdm-attack", *sys.argv[1:]])
    with cli.guard(run.debug):
        if merge:
            cli.merge_only(flags.given or shard)
            cli.emit_written([attack_api.merge_parts(inputs, output, command=command)])
            return
        if len(inputs) != 2:
            raise UsageError(f"expected MODEL.ckpt SET.h5, got {len(inputs)} argument(s)")
        if flags.attack is None or not flags.eps:
            raise UsageError("--attack and --eps are required")
        specs = flags.specs(run.seed)
        dev = cli.resolve_device(run.device)
        args = flags.recorded(model=inputs[0], set=inputs[1], batch_size=batch_size, shard=shard,
                              device=str(dev), seed=run.seed, output=output, precision=precision)
        part = parse_shard(shard)
        with cli.progress(disable=run.quiet) as prog:
            res = attack_api.attack_set(inputs[0], inputs[1], specs, output_paths(output, specs, inputs[1], part),
                                        batch_size=batch_size, device=dev, shard=part, command=command,
                                        arguments=args, progress=prog, precision=precision)
        for line in [] if run.quiet else res.summary():
            cli.console.print(line)
        cli.emit_written(res.paths)


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
