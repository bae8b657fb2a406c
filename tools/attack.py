"""rdm-attack: craft adversarial sets (FGSM, PGD, BIM, APGD-CE) against a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import cli
from rdm.attacks import AttackName

app = cli.make_app("Craft an adversarial set (L∞, pixel space) against a cnn or purified checkpoint.")


@app.command(epilog="Examples: rdm-attack baseline.ckpt test.h5 --attack pgd --eps 0.005 --alpha 0.002 "
                    "--steps 3 -o test-pgd.h5  |  rdm-attack baseline.ckpt test.h5 --attack fgsm "
                    "--eps 0.002 --eps 0.005 -o 'adv/test-fgsm-{eps}.h5'  |  rdm-attack --merge "
                    "p0.h5 p1.h5 -o adv.h5")
def attack(
    inputs: Annotated[list[Path], typer.Argument(help="MODEL.ckpt SET.h5, or the part files with --merge",
                                                 show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="output set; with several --eps a "
                                         "pattern with {eps} or a directory")],
    attack: Annotated[Optional[AttackName], typer.Option("--attack", case_sensitive=False,
                                                         help="fgsm, pgd, bim (PGD, no random start) or apgd")] = None,
    eps: Annotated[Optional[list[float]], typer.Option("--eps", help="L∞ budget in [0, 1]; repeat for a sweep")] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="PGD/BIM step size (default 2.5·ε/steps)")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="iterations (PGD/BIM 10, APGD 100)")] = None,
    restarts: Annotated[int, typer.Option("--restarts", help="restarts; per image the one that fools is kept")] = 1,
    random_start: Annotated[bool, typer.Option("--random-start/--no-random-start",
                                               help="PGD: start at a random point of the ε-ball")] = False,
    keep: Annotated[str, typer.Option("--keep", help="PGD: fooled (final iterate per restart), best "
                                      "(any iterate), last")] = "fooled",
    batch_size: Annotated[int, typer.Option("--batch-size", help="rows per batch")] = 128,
    shard: Annotated[Optional[str], typer.Option("--shard", help="i/n: attack rows [i·N/n, (i+1)·N/n) only")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="concatenate shard parts into -o")] = False,
    device: cli.DeviceOpt = "auto",
    precision: cli.PrecisionOpt = "fp32",
    seed: cli.SeedOpt = 0,
    quiet: cli.QuietOpt = False,
    debug: cli.DebugOpt = False,
):
    """Attack MODEL.ckpt on SET.h5 and write the adversarial set(s); prints the path(s) written."""
    from rdm import attack_api
    from rdm.attacks import AttackSpec
    from rdm.errors import RdmError

    command = " ".join(["rdm-attack", *sys.argv[1:]])
    with cli.guard(debug):
        if merge:
            if attack is not None or eps or shard:
                raise RdmError("--merge takes only the part files and -o")
            cli.emit(attack_api.merge_parts(inputs, output, command=command))
            return
        if len(inputs) != 2:
            raise RdmError(f"expected MODEL.ckpt SET.h5, got {len(inputs)} argument(s)")
        if attack is None or not eps:
            raise RdmError("--attack and --eps are required")
        specs = [AttackSpec.make(attack, e, alpha=alpha, steps=steps, restarts=restarts,
                                 random_start=random_start, seed=seed, keep=keep) for e in eps]
        dev = cli.resolve_device(device)
        args = dict(model=inputs[0], set=inputs[1], attack=attack, eps=eps, alpha=alpha, steps=steps,
                    restarts=restarts, random_start=random_start, keep=keep, batch_size=batch_size,
                    shard=shard, device=str(dev), seed=seed, output=output, precision=precision)
        with cli.progress(disable=quiet or not cli.console.is_terminal) as prog:
            res = attack_api.attack_set(inputs[0], inputs[1], specs, output, batch_size=batch_size,
                                        device=dev, shard=attack_api.parse_shard(shard),
                                        command=command, arguments=args, progress=prog,
                                        precision=precision)
        if not quiet:
            for s, p, k in zip(specs, res.paths, res.success):
                rate = k / res.clean_correct if res.clean_correct else float("nan")
                cli.console.print(f"{s!r}: {res.n} rows, success rate {rate:.1%} "
                                  f"({k}/{res.clean_correct} correctly classified) -> {p}")
        cli.emit(res.paths)


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
