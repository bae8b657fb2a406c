"""rdm-train-cnn: train the undefended CNN of a preset (paper Fig. 7) on a clean set."""

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli

app = cli.make_app("Train the undefended CNN (the paper's baseline) on a clean set.")

EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", max=bounds.MAX_EPOCHS, help="epochs (default: the preset's [train])")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", max=bounds.MAX_BATCH, help="batch size (default: the preset's [train])")]
PatienceOpt = Annotated[Optional[int], typer.Option(
    "--patience", max=bounds.MAX_EPOCHS, help="stop after this many epochs without a better validation score (0: never stop early; "
                       "default: the preset's [train])")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (default: the preset's [train])")]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="preset name or .toml path (default: the set's)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue from OUTPUT.partial, or extend a finished OUTPUT")]
ResumePartialOpt = Annotated[bool, typer.Option(
    "--resume-partial", help="continue OUTPUT.partial if an interrupted run with these same settings and data left "
                             "it, else start fresh (for pipelines and requeued batch jobs)")]
RestartOpt = Annotated[bool, typer.Option(
    "--restart", help="start again, discarding OUTPUT.partial left by an interrupted run (without --resume, "
                      "--resume-partial or --restart such a file is kept and the run refused)")]
HistoryOpt = Annotated[Optional[Path], typer.Option(
    "--history", metavar=cli.OUT, help="also write the per-epoch history as JSON (- for stdout)")]
OutOpt = Annotated[Path, typer.Option(
    "-o", "--output", metavar=cli.OUT, help="checkpoint to write (a file path: OUTPUT.partial is kept beside it)")]
ValOpt = Annotated[Optional[Path], typer.Option("--val", help="validation set: best weights and early stopping")]
AllowHeldOutOpt = Annotated[bool, typer.Option(
    "--allow-held-out-adv", help="train on --adv sets crafted from a test or validation split anyway "
                                 "(refused by default: it leaks held-out images into training)")]


@app.command(epilog="Example: rdm-train-cnn train.h5 --val val.h5 -o baseline.ckpt")
def train_cnn(train: Annotated[Path, typer.Argument(help="clean training set (.h5)")], output: OutOpt,
              val: ValOpt = None, preset: PresetOpt = None, epochs: EpochsOpt = None,
              batch_size: BatchOpt = None, lr: LrOpt = None,
              patience: PatienceOpt = None, seed: cli.SeedOpt = 0,
              device: cli.DeviceOpt = "auto", resume: ResumeOpt = False, resume_partial: ResumePartialOpt = False, restart: RestartOpt = False, history: HistoryOpt = None,
              precision: cli.PrecisionOpt = "fp32", quiet: cli.QuietOpt = False,
              debug: cli.DebugOpt = False):
    """Train the CNN; keeps the weights with the best validation balanced accuracy."""
    with cli.guard(debug):
        from rdm.api.train import Common, train_cnn as _train_cnn

        c = Common(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, device=device, resume=resume, resume_partial=resume_partial, restart=restart,
                   quiet=quiet, preset=preset, history=history, precision=precision, log=cli.say, warn=cli.warn)
        with cli.progress(disable=quiet) as c.progress:
            cli.emit(_train_cnn(train, output=output, val=val, c=c))


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
