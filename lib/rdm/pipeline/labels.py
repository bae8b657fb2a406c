"""The pipeline's vocabulary: models, modalities and their order in tables; ε, rates and attacks
are spelled by :mod:`rdm.evaluation.labels` (re-exported here).
"""

from __future__ import annotations

from typing import Any

from rdm.evaluation.labels import (  # noqa: F401  (the pipeline's one vocabulary)
    GREY_LEVELS, attack_label, eps_physical, eps_txt, eps_units, eps_values, fmt_eps, grey_budget, parse_eps, pct,
    same_eps, same_opt, short_attack, units_note, units_of,
)

PAPER_EPS = 0.005  # the ε of the paper's Tables III–XI

MODEL_LABELS = {
    "control": "Seed control (undefended, another seed)",
    "baseline": "No defence",
    "rdmaa": "RDMAA",
    "purified": "Purifier",
    "advtrain-fgsm": "AdvTrain-FGSM",
    "advtrain-pgd": "AdvTrain-PGD",
    "advtrain-online": "AdvTrain-online",
    "advtrain-trades": "AdvTrain-TRADES",
    "advtrain-fast": "AdvTrain-fast",
    "noise-12": "Noise σ=.12",
    "noise-25": "Noise σ=.25",
    # RDMAA's ablations
    "rdmaa-cleandcae": "RDMAA, clean-only DCAE",
    "scratch": "RDMAA schedule, random init",
    "rdmaa-frozen": "RDMAA, frozen encoder",
    # trained at the matched ε (the DCAE's sets; the on-line PGD recipe's ε)
    "dcae-at-matched": "DCAE (matched-ε sets)",
    "rdmaa-at-matched": "RDMAA (matched-ε DCAE)",
    "advtrain-online-at-matched": "AdvTrain-online (matched ε)",
}
# the order the defended models are shown in; models the grid adds come after, in grid order
DEFENDED_ORDER = ["rdmaa", "purified", "advtrain-fgsm", "advtrain-pgd", "advtrain-online", "advtrain-trades",
                  "advtrain-fast", "rdmaa-at-matched", "advtrain-online-at-matched"]
MODALITY_TITLE = {"lung": "Lung nodule (CT patches; the paper's \"X-ray\")", "leukemia": "Acute leukemia (microscopy)",
                  "brain": "Brain tumour (MRI)",
                  "brain-grouped": "Brain tumour (MRI), similar slices grouped into one split (for the missing patient ids)"}


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def modality_title(m: str) -> str:
    return MODALITY_TITLE.get(m, m)


# --------------------------------------------------------------------------- numbers
