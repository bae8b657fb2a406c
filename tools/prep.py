"""rdm-prep: raw images -> train.h5 val.h5 test.h5 (see rdm.prep.api)."""

from __future__ import annotations

from rdm.interrupts import at_startup

at_startup(__name__)     # first: Ctrl-C during the imports below is one line, exit 130

import importlib.util
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rdm import bounds, cli
from rdm.evaluation.figures import PREVIEW_FORMATS
from rdm.data.presets import load_preset

app = cli.make_app("Prepare train/val/test sets for a preset from an image folder, .mat files, "
                   "LUNA16 volumes or synthetic phantoms.")

EPILOG = ("Examples: rdm-prep data/leukemia --preset leukemia -o out/leukemia ; "
          "rdm-prep brain-download --preset brain --class-map 1=meningioma --class-map 2=glioma "
          "--class-map 3=pituitary -o out/brain ; rdm-prep figshare/*.mat --preset brain -o out/brain ; "
          "rdm-prep synthetic --preset lung --n 600 -o out/demo")


def _class_map(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        src, sep, dst = it.partition("=")
        if not sep or not src or not dst:
            raise typer.BadParameter(f"'{it}': expected SRC=DST", param_hint="--class-map")
        out[src] = dst
    return out


@app.command(epilog=EPILOG)
def prep(
    source: Annotated[list[str], typer.Argument(
        help="image-folder tree (one sub-folder per class of PNG/JPEG/TIFF/..., DICOM .dcm or NIfTI .nii/.nii.gz "
             "slices; optional labels.csv), .mat file(s) or a "
             "folder of them, a LUNA16 folder (*.mhd + candidates.csv), or the word 'synthetic'")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="brain, leukemia, lung or a .toml path")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", metavar=cli.OUT_DIR, help="folder for train.h5 val.h5 test.h5 (outside the source folder)")],
    group_col: Annotated[Optional[str], typer.Option(
        "--group-col", help="manifest column whose rows must share a split (default: the preset's, if present)")] = None,
    class_map: Annotated[Optional[list[str]], typer.Option(
        "--class-map", help="SRC=DST: a folder name or label SRC means class DST (repeatable)")] = None,
    candidates: Annotated[Optional[Path], typer.Option(
        "--candidates", help="LUNA16 candidates CSV (default SOURCE/candidates.csv)")] = None,
    n: Annotated[Optional[int], typer.Option("--n", min=3, max=bounds.MAX_IMAGES, help="images for 'synthetic' (default 600)")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="skip unusable inputs, list them on stderr")] = False,
    no_resize: Annotated[bool, typer.Option(
        "--no-resize", help="refuse images whose size is not the preset's (default: resize them with LANCZOS and "
                            "say how many, from which sizes)")] = False,
    label_source: Annotated[Optional[str], typer.Option(
        "--label-source", help="when labels.csv and the class folder disagree on an image's class: 'manifest' "
                               "or 'folder' wins (default: refuse)")] = None,
    group_similar: Annotated[Optional[float], typer.Option(
        "--group-similar", min=0.0, help="TAU: images within RMS pixel distance TAU of each other (transitively) "
                                         "share a group and so a split; for data without patient ids")] = None,
    group_cap: Annotated[Optional[int], typer.Option(
        "--group-cap", min=1, max=bounds.MAX_IMAGES, help="K: with --group-similar, join the nearest pairs first and never past K images "
                                   "per group nor across classes (plain transitive grouping chains one patient's "
                                   "slices into most of the set once TAU reaches them)")] = None,
    audit: Annotated[bool, typer.Option(
        "--audit", help="also write OUTPUT/audit.json: test images with a training image within RMS τ, and the "
                        "shortcut baselines (1-NN on pixels, logistic regression on colour statistics)")] = False,
    preview: Annotated[Optional[Path], typer.Option(
        "--preview", metavar=cli.OUT, help="also write a grid of 6 random training images per class to this .png/.pdf/.svg, "
                          "to look at what the models will see")] = None,
    seed: cli.SeedOpt = 0,
    quiet: cli.QuietOpt = False,
    debug: cli.DebugOpt = False,
):
    cmap = _class_map(class_map or [])
    if preview is not None and preview.suffix.lstrip(".").lower() not in PREVIEW_FORMATS:
        raise typer.BadParameter(f"'{preview}': use one of .{', .'.join(PREVIEW_FORMATS)}", param_hint="--preview")
    if label_source is not None and label_source not in ("manifest", "folder"):
        raise typer.BadParameter(f"'{label_source}': use manifest or folder", param_hint="--label-source")
    if preview is not None and importlib.util.find_spec("matplotlib") is None:
        raise typer.BadParameter("needs matplotlib: pip install 'rdm[report]'", param_hint="--preview")
    with cli.guard(debug):
        from rdm.data.guard import check_outputs
        from rdm.data.presets import preset_file
        from rdm.prep.api import OUT_NAMES, prepare, summary_table

        outs = [("-o", output / name) for name in (*OUT_NAMES, *(["audit.json"] if audit else []))]
        check_outputs([*outs, ("--preview", preview)], [*source, preset_file(preset), candidates])

        with cli.progress(disable=quiet) as prog:
            res = prepare(source, load_preset(preset), output, group_col=group_col, class_map=cmap,
                          candidates=candidates, skip_bad=skip_bad, label_source=label_source, seed=seed, n=n,
                          group_similar=group_similar, group_cap=group_cap, resize=not no_resize,
                          command=" ".join(["rdm-prep", *sys.argv[1:]]),
                          arguments=dict(source=source, preset=preset, output=output, group_col=group_col,
                                         class_map=cmap, candidates=candidates, n=n, skip_bad=skip_bad,
                                         label_source=label_source, group_similar=group_similar, group_cap=group_cap,
                                         no_resize=no_resize, seed=seed),
                          warn=cli.warn, progress=prog)
        if res.skipped:
            cli.console.print(f"skipped {len(res.skipped)} bad input(s):", style="yellow", markup=False)
            for b in res.skipped:
                cli.console.print(f"  {b}", markup=False, soft_wrap=True)
        if not quiet:
            cli.console.print(summary_table(res))
        if audit:
            from rdm.evaluation.audit import write_audit

            path, a = write_audit(output, seed=seed)
            if not quiet:
                for line in a.lines():
                    cli.say(line)
        if preview is not None:
            from rdm.evaluation.figures import fig_samples

            train = next(p for p in res.paths if Path(p).name == "train.h5")
            fig_samples(train, preview, seed=seed)
            if not quiet:
                cli.console.print(f"preview: {preview}", markup=False, soft_wrap=True)
        cli.emit([str(p) for p in res.paths])


def main():
    cli.run(app)


if __name__ == "__main__":
    main()
