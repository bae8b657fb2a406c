"""rdm-train-cnn: train the undefended CNN of a preset (paper Fig. 7) on a clean set."""

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated

import typer

from rdm import cli
from rdm.cli.options import OutOpt, Training, ValOpt

app = cli.make_app("Train the undefended CNN (the paper's baseline) on a clean set.")

@app.command(epilog="Example: rdm-train-cnn train.h5 --val val.h5 -o baseline.ckpt")
def train_cnn(train: Annotated[Path, typer.Argument(help="clean training set (.h5)")], output: OutOpt,
              val: ValOpt = None, t: Training = None):
    """Train the CNN; keeps the weights with the best validation balanced accuracy."""
    with cli.guard(t.debug):
        from rdm.api.train import train_cnn as _train_cnn

        c = t.common(log=cli.say, warn=cli.warn)
        with cli.progress(disable=t.quiet) as c.progress:
            cli.emit(_train_cnn(train, output=output, val=val, c=c))


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
