"""Evaluate a PyTorch model of your own with rdm's attacks and statistics, no checkpoint needed.

``rdm-eval`` takes checkpoints that rebuild through :mod:`rdm.data.checkpoint` (never code). A model
whose class lives in your own code cannot be stored that way, and need not be: hand the
``nn.Module`` itself to :func:`evaluate`. It is evaluated by the same code as ``rdm-eval``
(:func:`rdm.api.eval.evaluate_checkpoint`: the same attacks, only the rows right on the clean image
attacked, the same counts, per-row results and masking warnings) and the result is the dict
``rdm-eval -o`` writes, so it goes wherever an ``rdm-eval`` JSON goes::

    import rdm.api.adapter
    report = rdm.api.adapter.evaluate(my_model, "lung/test.h5", attack="apgd", eps=0.005, steps=100)
    report["results"][1]["metrics"]["accuracy"]          # robust accuracy (results[0] is clean)

What the model must do (the same contract as rdm's own models):

* take a float32 batch N×C×H×W of pixels in [0, 1] (the set's shape; any normalisation is a layer
  inside the model, so ε is measured in pixel space);
* return logits N×K for the set's K classes, in the set's class order (``classes`` attribute of
  the set), or N×1 for two classes (one logit, class 1 when positive);
* be differentiable with respect to its input (the white-box attacks take input gradients only).

The model is put in eval mode for the run (its mode restored after), moved to ``device`` and its
weights made channels-last (values unchanged), as ``rdm-eval`` does with a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from rdm.data.checkpoint import Checkpoint
from rdm.errors import RdmError


def module_sha256(model: nn.Module) -> str:
    """A content hash of the module's state (names, shapes, dtypes and bytes, in name order): what
    ``model_sha256`` means for a model that is not a file."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}\0{list(t.shape)}\0{t.dtype}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_outputs(model: nn.Module, shape: Sequence[int], classes: list[str], name: str, device) -> None:
    """One forward pass of two zero images: a tensor N×K (or N×1 for two classes), else one line."""
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *shape, device=device))
    except Exception as e:   # a user's model: any failure is one line naming it
        raise RdmError(f"{name}: the model fails on a batch 2×{'×'.join(map(str, shape))} "
                       f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    k = len(classes)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2 or \
            out.shape[1] not in ((k, 1) if k == 2 else (k,)):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RdmError(f"{name}: the model gives {got} for a batch of 2; the set has {k} classes, "
                       f"so logits 2×{k}" + (" or 2×1" if k == 2 else "") + " are expected")


def evaluate(model: nn.Module, sets: os.PathLike | str | Sequence[os.PathLike | str], *,
             attack: str | None = None, eps: float | Sequence[float] = (), name: str = "user-model",
             source: os.PathLike | str | None = None, batch_size: int = 256, device: str = "cpu",
             precision: str = "fp32", seed: int = 0, output: os.PathLike | str | None = None,
             **attack_params: Any) -> dict[str, Any]:
    """``rdm-eval`` of an ``nn.Module``: metrics on each set (clean, or adversarial sets crafted by
    ``rdm-attack``: transfer), and with ``attack`` (a registered attack: fgsm, pgd, apgd, aa, square,
    …) and ``eps`` the white-box attack on the model itself at each ε, from each clean set.

    ``attack_params`` are the attack's hyper-parameters as ``rdm-eval``'s flags name them
    (``steps=50, restarts=5, random_start=True``, ``alpha=…``, ``queries=…``). Returns the report
    ``rdm-eval -o`` writes (``model`` is ``name``, ``model_sha256`` :func:`module_sha256`); with
    ``output`` it is also written there, atomically. Bad input raises :class:`rdm.errors.RdmError`
    (one line) before any attack runs."""
    from rdm.api import eval as eval_api
    from rdm.attacks.registry import spec_from_options
    from rdm.errors import UsageError
    from rdm.data.sets import validate_set

    if not isinstance(model, nn.Module):
        raise RdmError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")
    paths = [sets] if isinstance(sets, (str, os.PathLike)) else list(sets)
    if not paths:
        raise RdmError("no set to evaluate")
    eps_list = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if (attack is None) != (not eps_list):
        raise UsageError("attack and eps go together")
    if attack is None and attack_params:
        raise UsageError(f"{', '.join(sorted(attack_params))}: attack settings without an attack")
    specs = [spec_from_options(attack, e, seed=seed, **attack_params) for e in eps_list] if attack else []
    info = validate_set(paths[0], what=name, check_values=False)
    dev = torch.device(device)
    was_training = model.training
    model.to(dev).eval()
    try:
        _check_outputs(model, info.shape, list(info.classes), name, dev)
        ck = Checkpoint(path=Path(name), model=model, trainer=None, sha256=module_sha256(model),
                        meta={"kind": "cnn", "arch": {"name": type(model).__name__}, "classes": list(info.classes),
                              "input_shape": list(info.shape)})
        report = eval_api.evaluate_checkpoint(ck, paths, source=source, specs=specs, batch_size=batch_size,
                                              device=dev, seed=seed, precision=precision)
    finally:
        model.train(was_training)
    if output is not None:
        from rdm.data.atomic import atomic_output
        from rdm.attacks.per_row import dumps

        with atomic_output(output) as tmp:
            Path(tmp).write_text(dumps(report))
    return report
