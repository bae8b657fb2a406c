"""rdm-pretrain-dcae: train the DCAE to reconstruct clean images from clean and adversarial ones."""

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from rdm import cli
from rdm.cli.options import OutOpt, Training, ValOpt

app = cli.make_app("Pre-train the DCAE (paper section 3.B): clean and adversarial inputs, clean targets.")


@app.command(epilog="Example: rdm-pretrain-dcae train.h5 train-fgsm-0.005.h5 train-pgd-0.005.h5 "
                    "--val val.h5 -o dcae.ckpt")
def pretrain_dcae(
    train: Annotated[Path, typer.Argument(help="clean training set (.h5): the targets")],
    adv: Annotated[Optional[List[Path]], typer.Argument(
        help="adversarial sets made from TRAIN (need a source_index column; TRAIN's sha256 must be in "
             "their provenance)")] = None,
    output: OutOpt = ..., val: ValOpt = None,
    val_adv: Annotated[Optional[List[Path]], typer.Option(
        "--val-adv", help="adversarial sets made from the --val set, also validated on")] = None,
    t: Training = None):
    """MSE between the DCAE's output and the clean image; keeps the lowest validation MSE
    and reports validation MSE and PSNR."""
    with cli.guard(t.debug):
        from rdm.api.train import pretrain_dcae as _pretrain_dcae

        c = t.common(log=cli.say, warn=cli.warn)
        with cli.progress(disable=t.quiet) as c.progress:
            cli.emit(_pretrain_dcae(train, adv or [], output=output, val=val, val_adv=val_adv or [], c=c))


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
