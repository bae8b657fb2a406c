"""rdm-advtrain: adversarial training, the paper's (clean ∪ adversarial sets) or on-line PGD (Madry 2018)."""

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from rdm import bounds, cli
from rdm.cli.options import AllowHeldOutOpt, OutOpt, Training, ValOpt

app = cli.make_app("Adversarially train the CNN: on given adversarial sets (paper) or on-line PGD (Madry).")


EXAMPLES = ["rdm-advtrain train.h5 --adv train-fgsm-0.005.h5 --val val.h5 -o advtrain.ckpt",
            "rdm-advtrain train.h5 --online pgd --eps 0.005 --steps 7 --val val.h5 -o advtrain-pgd.ckpt",
            "rdm-advtrain train.h5 --recipe trades --beta 6 --eps 0.005 --val val.h5 -o trades.ckpt",
            "rdm-advtrain train.h5 --recipe gaussian --sigma 0.25 --val val.h5 -o noise.ckpt"]


@app.command(epilog="Examples: " + "\n\n".join(EXAMPLES))
def advtrain(
    train: Annotated[Path, typer.Argument(help="clean training set (.h5)")],
    output: OutOpt, val: ValOpt = None,
    adv: Annotated[Optional[List[Path]], typer.Option(
        "--adv", help="paper recipe: train on TRAIN ∪ these adversarial sets; repeatable")] = None,
    online: Annotated[Optional[str], typer.Option(
        "--online", help="on-line recipe: 'pgd' attacks every batch against the current model")] = None,
    eps: Annotated[Optional[float], typer.Option("--eps", help="L∞ budget of the on-line attack")] = None,
    steps: Annotated[int, typer.Option("--steps", max=bounds.MAX_STEPS, help="PGD steps of the on-line attack")] = 7,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="PGD step size (default 2.5·eps/steps)")] = None,
    recipe: Annotated[Optional[str], typer.Option(
        "--recipe", help="paper (with --adv), pgd (= --online pgd), fast (FGSM from a random start, step "
                         "1.25·eps), trades, mart (with --beta), gaussian (with --sigma)")] = None,
    beta: Annotated[float, typer.Option("--beta", help="TRADES/MART weight of the robust term")] = 6.0,
    sigma: Annotated[Optional[float], typer.Option("--sigma", help="gaussian: noise std on [0, 1] pixels")] = None,
    allow_held_out_adv: AllowHeldOutOpt = False, t: Training = None):
    """Give --adv (the paper's data augmentation) or --online pgd (Madry et al.), not both."""
    with cli.guard(t.debug):
        from rdm.api.advtrain import advtrain as _advtrain

        c = t.common(log=cli.say, warn=cli.warn)
        with cli.progress(disable=t.quiet) as c.progress:
            cli.emit(_advtrain(train, output=output, val=val, adv=adv or [], online=online, eps=eps, steps=steps,
                               alpha=alpha, c=c, allow_held_out=allow_held_out_adv,
                               recipe=recipe, beta=beta, sigma=sigma))


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
