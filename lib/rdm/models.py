"""The paper's models (section 3.B/3.C, Figs. 5–7): one encoder, the DCAE, the CNN heads.

Every model takes pixels in [0, 1]; any normalisation is a layer inside it
(:class:`Normalize`, identity by default, as the paper scales to [0, 1] only),
so ε is always measured in pixel space.

The CNN's ``encoder.*`` parameters have exactly the names and shapes of the
DCAE's ``encoder.*``, so :func:`transfer_encoder` is a checked state-dict copy.

Binary heads (lung) end in ONE logit, as the paper's; :func:`as_class_logits`
turns it into two-class logits ``[0, z]`` so that cross-entropy, softmax and
argmax treat binary and multi-class models alike (softmax([0, z])₁ = sigmoid(z),
so the CE equals the BCE of the single logit).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rdm.errors import RdmError

ENCODER_FILTERS = 64
ENCODER_BLOCKS = 3


class Normalize(nn.Module):
    """(x − mean) / std per channel, as buffers (not parameters)."""

    def __init__(self, channels: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        mean = torch.as_tensor(mean if mean is not None else [0.0] * channels, dtype=torch.float32)
        std = torch.as_tensor(std if std is not None else [1.0] * channels, dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1).clone())
        self.register_buffer("std", std.view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Encoder(nn.Module):
    """Three blocks of Conv2d(64, 3×3, same) + ReLU + MaxPool(2)."""

    def __init__(self, in_channels: int, filters: int = ENCODER_FILTERS, blocks: int = ENCODER_BLOCKS):
        super().__init__()
        self.blocks = blocks
        chans = [in_channels] + [filters] * blocks
        for i in range(blocks):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.blocks):
            x = F.max_pool2d(F.relu(getattr(self, f"conv{i + 1}")(x)), 2)
        return x

    @staticmethod
    def out_size(h: int, w: int, blocks: int = ENCODER_BLOCKS) -> tuple[int, int]:
        for _ in range(blocks):
            h, w = h // 2, w // 2
        return h, w


class DCAE(nn.Module):
    """Deep convolutional autoencoder: the encoder, then four convs and three ×2 up-samplings.

    Decoder: conv64 → up → conv32 → up → conv16 → up → conv(C) → sigmoid. Up-sampling
    goes back to the exact sizes the encoder pooled from (52 → 26 → 13 → 6 and back to 52).
    """

    def __init__(self, in_channels: int, height: int, width: int, filters: int = ENCODER_FILTERS):
        super().__init__()
        self.in_channels, self.height, self.width = in_channels, height, width
        self.normalize = Normalize(in_channels)
        self.encoder = Encoder(in_channels, filters)
        self.dec1 = nn.Conv2d(filters, 64, 3, padding=1)
        self.dec2 = nn.Conv2d(64, 32, 3, padding=1)
        self.dec3 = nn.Conv2d(32, 16, 3, padding=1)
        self.out = nn.Conv2d(16, in_channels, 3, padding=1)
        h, w = height, width
        sizes = []
        for _ in range(ENCODER_BLOCKS):
            sizes.append((h, w))
            h, w = h // 2, w // 2
        self._sizes = list(reversed(sizes))  # sizes to up-sample to: (h/4, h/2, h)

    @torch.no_grad()
    def start_at_mean(self, mean: Sequence[float]) -> None:
        """Set the output layer's bias so that the untrained DCAE outputs about the data's mean colour.

        With the default bias (≈0, sigmoid ≈ 0.5) the first steps on mostly dark images (brain
        MRI, mean 0.15) or mostly bright ones (leukaemia smears, mean 0.85) drive the output into the
        flat tail of the sigmoid, where its gradient vanishes: the DCAE then outputs one constant
        image for good (seen on the real brain set: val MSE 0.050, worse than the mean image's 0.026).
        """
        m = torch.as_tensor(list(mean), dtype=self.out.bias.dtype).clamp(1e-3, 1 - 1e-3)
        if m.numel() != self.out.bias.numel():
            raise RdmError(f"{m.numel()} channel means for a DCAE with {self.out.bias.numel()} channels")
        self.out.bias.copy_(torch.log(m / (1 - m)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.normalize(x))
        z = F.relu(self.dec1(z))
        z = F.interpolate(z, size=self._sizes[0], mode="nearest")
        z = F.relu(self.dec2(z))
        z = F.interpolate(z, size=self._sizes[1], mode="nearest")
        z = F.relu(self.dec3(z))
        z = F.interpolate(z, size=self._sizes[2], mode="nearest")
        return torch.sigmoid(self.out(z))


class CNN(nn.Module):
    """Encoder, flatten, dense layers (``hidden``), optional dropout, output layer.

    ``binary=True`` gives a single logit (the paper's lung model); otherwise one
    logit per class.
    """

    def __init__(self, in_channels: int, height: int, width: int, num_classes: int,
                 hidden: Sequence[int] = (128,), dropout: float = 0.0, binary: bool = False,
                 filters: int = ENCODER_FILTERS):
        super().__init__()
        if binary and num_classes != 2:
            raise RdmError(f"a binary head needs 2 classes, got {num_classes}")
        self.normalize = Normalize(in_channels)
        self.encoder = Encoder(in_channels, filters)
        fh, fw = Encoder.out_size(height, width)
        layers: list[nn.Module] = []
        width_in = filters * fh * fw
        for hdim in hidden:
            layers += [nn.Linear(width_in, int(hdim)), nn.ReLU()]
            width_in = int(hdim)
        if dropout > 0:
            layers.append(nn.Dropout(float(dropout)))
        layers.append(nn.Linear(width_in, 1 if binary else num_classes))
        self.head = nn.Sequential(*layers)
        self.binary = binary
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.encoder(self.normalize(x)), 1))


class Purified(nn.Module):
    """The purifier reading of RDMAA: a trained DCAE in front of a CNN, end to end differentiable."""

    def __init__(self, dcae: DCAE, cnn: CNN):
        super().__init__()
        self.dcae = dcae
        self.cnn = cnn
        self.binary = cnn.binary
        self.num_classes = cnn.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(self.dcae(x))


# --------------------------------------------------------------------------- building
ARCHS = {"dcae": DCAE, "cnn": CNN}


def build(arch: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its checkpoint description ``{"name": ..., "args": {...}}``."""
    name = arch.get("name")
    if name == "purified":
        return Purified(build(arch["dcae"]), build(arch["cnn"]))
    if name not in ARCHS:
        raise RdmError(f"unknown architecture '{name}'")
    try:
        return ARCHS[name](**arch.get("args", {}))
    except TypeError as e:
        raise RdmError(f"architecture '{name}' has bad arguments ({e})") from None


def cnn_arch(preset) -> dict[str, Any]:
    m = preset.model
    return {"name": "cnn", "args": {
        "in_channels": preset.channels, "height": preset.size[0], "width": preset.size[1],
        "num_classes": preset.num_classes, "hidden": list(m.get("hidden", [128])),
        "dropout": float(m.get("dropout", 0.0)), "binary": bool(m.get("binary", False))}}


def dcae_arch(preset) -> dict[str, Any]:
    return {"name": "dcae", "args": {"in_channels": preset.channels,
                                     "height": preset.size[0], "width": preset.size[1]}}


def transfer_encoder(dcae: nn.Module, cnn: nn.Module) -> None:
    """Copy the DCAE's encoder into the CNN's, checking names and shapes first."""
    src = {k: v for k, v in dcae.state_dict().items() if k.startswith("encoder.")}
    dst = {k: v for k, v in cnn.state_dict().items() if k.startswith("encoder.")}
    if set(src) != set(dst):
        raise RdmError(f"DCAE encoder parameters {sorted(src)} do not match the CNN's {sorted(dst)}")
    for k in src:
        if src[k].shape != dst[k].shape:
            raise RdmError(f"DCAE encoder '{k}' has shape {tuple(src[k].shape)}, "
                           f"the CNN expects {tuple(dst[k].shape)}")
    with torch.no_grad():
        for k, p in cnn.named_parameters():
            if k in src:
                p.copy_(src[k])


# --------------------------------------------------------------------------- outputs
def as_class_logits(logits: torch.Tensor) -> torch.Tensor:
    """N×1 single logit → N×2 logits [0, z]; N×K unchanged."""
    if logits.dim() == 2 and logits.shape[1] == 1:
        return torch.cat([torch.zeros_like(logits), logits], dim=1)
    return logits


def predict(logits: torch.Tensor) -> torch.Tensor:
    return as_class_logits(logits).argmax(dim=1)


def finite_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logits``, or one-line RdmError when any is NaN or inf: the argmax of such a model is a
    constant class, which would read as a majority-rate accuracy and a robust (never fooled) model."""
    bad = ~torch.isfinite(logits.detach())
    if bool(bad.any()):
        rows = int(bad.reshape(len(logits), -1).any(dim=1).sum()) if logits.dim() else 1
        raise RdmError(f"the model gives NaN or inf logits on {rows} of {len(logits) if logits.dim() else 1} "
                       "images; refused (its weights or its arithmetic overflow)")
    return logits


#: forward passes on CPU in pieces of this many rows: the activations stay in cache (lung CNN,
#: one thread: 450 img/s at 64 rows, 347 at 256)
CPU_PREDICT_ROWS = 64


def predict_rows(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels of the images ``x`` (N×C×H×W, on the model's device), without gradients.

    Images go in channels-last, as the attacks and the training loop run them (with the weights made
    channels-last by the caller, ``model.to(memory_format=torch.channels_last)``): the lung CNN's
    forward pass is 3.3× faster so on CPU. On CPU the rows go through in pieces of
    :data:`CPU_PREDICT_ROWS`; on a GPU in one piece. ``rdm-eval`` and ``rdm-certify`` both predict here."""
    with torch.no_grad():
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        step = CPU_PREDICT_ROWS if x.device.type == "cpu" else max(len(x), 1)
        return torch.cat([predict(finite_logits(model(x[i:i + step]))) for i in range(0, len(x), step)]
                         or [torch.zeros(0, dtype=torch.long, device=x.device)])


def classification_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy for multi-class heads; equals BCE-with-logits for a single-logit head."""
    return F.cross_entropy(as_class_logits(logits), y, reduction=reduction)
