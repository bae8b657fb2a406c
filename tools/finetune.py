"""rdm-finetune: RDMAA — a CNN whose encoder starts from the pre-trained DCAE's; or the purified composite."""

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from rdm import cli
from rdm.cli.options import AllowHeldOutOpt, OutOpt, Training, ValOpt

app = cli.make_app("Fine-tune a CNN from a DCAE encoder (RDMAA), or put the DCAE in front of a CNN.")


@app.command(epilog="Examples: rdm-finetune train.h5 --dcae dcae.ckpt --val val.h5 -o rdmaa.ckpt\n\n"
                    "rdm-finetune train.h5 --dcae dcae.ckpt --purify --cnn baseline.ckpt --val val.h5 "
                    "-o purified.ckpt\n\n"
                    "rdm-finetune train.h5 --init random --val val.h5 -o scratch.ckpt")
def finetune(
    train: Annotated[Path, typer.Argument(help="clean training set (.h5)")],
    output: OutOpt,
    dcae: Annotated[Optional[Path], typer.Option(
        "--dcae", help="pre-trained DCAE checkpoint (rdm-pretrain-dcae); required unless --init random")] = None,
    init: Annotated[str, typer.Option(
        "--init", help="dcae: the encoder starts as the DCAE's (RDMAA); random: it starts at random, everything "
                       "else as RDMAA (the ablation 'RDMAA without the DCAE')")] = "dcae",
    val: ValOpt = None,
    adv: Annotated[Optional[List[Path]], typer.Option(
        "--adv", help="adversarial sets to train on as well (labels = their y); repeatable")] = None,
    freeze_encoder: Annotated[bool, typer.Option(
        "--freeze-encoder/--no-freeze-encoder",
        help="keep the copied DCAE encoder fixed; default: fine-tune every layer, as the paper's "
             "'fine-tuning of parameters' (section 3.C) does")] = False,
    purify: Annotated[bool, typer.Option(
        "--purify", help="write a 'purified' checkpoint: the DCAE in front of the CNN (with --cnn: that "
                         "trained CNN, no training; without: the CNN fine-tuned here)")] = False,
    cnn: Annotated[Optional[Path], typer.Option("--cnn", help="trained CNN checkpoint for --purify")] = None,
    allow_held_out_adv: AllowHeldOutOpt = False, t: Training = None):
    """The CNN's convolutional encoder is initialised from the DCAE's (checked copy; --init random:
    left at random), the dense head at random; then all layers are trained on the clean set (and
    --adv sets)."""
    with cli.guard(t.debug):
        from rdm.api.train import finetune as _finetune

        c = t.common(log=cli.say, warn=cli.warn)
        with cli.progress(disable=t.quiet) as c.progress:
            cli.emit(_finetune(train, dcae=dcae, output=output, val=val, adv=adv or [],
                               freeze_encoder=freeze_encoder, purify=purify, cnn=cnn, c=c, allow_held_out=allow_held_out_adv,
                               init=init.lower()))


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
