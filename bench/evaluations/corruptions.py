"""Corruptions in the spirit of MNIST-C (Mu and Gilmer, 2019): accuracy per corruption and the mean.

Each corruption is ``(images uint8 (N, C, H, W), severity, generator) -> uint8 images``: severity
0 returns the images unchanged, 1 is the strength used here (about MNIST-C's); every image
draws its own parameters (angle, noise, position) from a generator seeded per dataset and
corruption, so every run, call and process sees the same corrupted images.  They are built
from torchvision's ``transforms.v2.functional`` ops where one exists (blur, rotation, affine
shear and scale, contrast, elastic, erase); noise comes from the seeded generator (torchvision's
``gaussian_noise`` draws from the global one).  Values are computed in [0, 1], clamped, and
rounded back to uint8, so every pixel stays in range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

from .registry import Measured, Output, register_evaluation
from .subject import Subject, EvalSet

Corrupt = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


def _v2():
    import torchvision.transforms.v2.functional as F  # imported when used: torchvision is slow to import

    return F


def _float(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32) / 255.0


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def _each(images: torch.Tensor, params: list, op: Callable) -> torch.Tensor:
    """``op(image (C, H, W), its parameter)`` for every image."""
    return torch.stack([op(img, p) for img, p in zip(images, params)]) if len(images) else images.clone()


def _signed(n: int, low: float, high: float, g: torch.Generator) -> list[float]:
    """Magnitudes uniform in [low, high] with a random sign, one per image."""
    magnitude = low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)
    sign = torch.randint(2, (n,), generator=g) * 2 - 1
    return (magnitude * sign).tolist()


def gaussian_noise(images, severity, g):
    noise = torch.randn(images.shape, generator=g)
    return _uint8(_float(images) + 0.35 * severity * noise)


def impulse_noise(images, severity, g):
    """Salt and pepper: a share of pixels (per channel) set to 0 or 1."""
    u = torch.rand(images.shape, generator=g)
    amount = 0.2 * severity
    x = _float(images)
    x = torch.where(u < amount / 2, 0.0, x)
    return _uint8(torch.where(u > 1 - amount / 2, 1.0, x))


def gaussian_blur(images, severity, g):
    if severity == 0:
        return images.clone()  # a blur of zero width is the identity (torchvision needs sigma > 0)
    sigma = 1.2 * severity * images.shape[-1] / 28
    size = min(2 * math.ceil(3 * sigma) + 1, images.shape[-1] - (1 - images.shape[-1] % 2))
    return _v2().gaussian_blur(images, [size, size], [sigma, sigma])


def motion_blur(images, severity, g):
    """Each image averaged along a line of random direction (a camera shake)."""
    n, c, h, w = images.shape
    length = 1 + 2 * round(3 * severity * w / 28)
    angles = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    centre, t = length // 2, torch.linspace(-(length // 2), length // 2, 4 * length, dtype=torch.float64)
    kernels = torch.zeros(n, length, length)
    for i, a in enumerate(angles.tolist()):
        ys = (centre + t * math.sin(a)).round().long()
        xs = (centre + t * math.cos(a)).round().long()
        kernels[i, ys, xs] = 1.0
    kernels /= kernels.sum((1, 2), keepdim=True)
    weight = kernels.repeat_interleave(c, 0).unsqueeze(1)  # (n*c, 1, L, L), one kernel per image
    x = _float(images).reshape(1, n * c, h, w)
    return _uint8(nnf.conv2d(x, weight, padding=length // 2, groups=n * c).reshape(n, c, h, w))


def rotate(images, severity, g):
    angles = _signed(len(images), 15 * severity, 35 * severity, g)
    F = _v2()
    return _each(images, angles, lambda img, a: F.rotate(img, a, interpolation=F.InterpolationMode.BILINEAR))


def shear(images, severity, g):
    angles = _signed(len(images), 15 * severity, 35 * severity, g)
    F = _v2()
    return _each(images, angles, lambda img, a: F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=[a, 0.0],
                                                         interpolation=F.InterpolationMode.BILINEAR))


def scale(images, severity, g):
    """Shrunk about the centre (MNIST-C's scale): strokes get thinner and the digit smaller."""
    factors = (1 - severity * (0.3 + 0.2 * torch.rand(len(images), generator=g, dtype=torch.float64))).tolist()
    F = _v2()
    return _each(images, factors, lambda img, s: F.affine(img, angle=0.0, translate=[0, 0], scale=s, shear=[0.0, 0.0],
                                                          interpolation=F.InterpolationMode.BILINEAR))


def brightness(images, severity, g):
    """Added light (MNIST-C's brightness): a dark background turns grey.  torchvision's
    ``adjust_brightness`` multiplies, which leaves a black background black."""
    return _uint8(_float(images) + 0.45 * severity)


def contrast(images, severity, g):
    return _v2().adjust_contrast(images, 1.0 - 0.75 * severity)


def elastic(images, severity, g):
    """A smooth random displacement field per image (Simard et al. 2003), ``transforms.v2.functional.elastic``."""
    n, _c, h, w = images.shape
    F = _v2()
    raw = torch.rand((n, 2, h, w), generator=g) * 2 - 1
    sigma = 3.0 * w / 28
    size = min(2 * math.ceil(3 * sigma) + 1, w - (1 - w % 2))
    smooth = F.gaussian_blur(raw, [size, size], [sigma, sigma])
    smooth /= smooth.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-12)
    alpha = 2.5 * severity  # pixels, at the field's peak
    # torchvision's displacement is (1, H, W, 2) in normalized [-1, 1] coordinates.
    fields = (smooth * alpha * 2 / torch.tensor([w, h]).view(1, 2, 1, 1)).permute(0, 2, 3, 1).unsqueeze(1)
    return _each(images, list(fields), lambda img, d: F.elastic(img, d, interpolation=F.InterpolationMode.BILINEAR))


def stripes(images, severity, g):
    """Bright lines across the image, every quarter of its height, horizontal or vertical, random phase."""
    n, _c, h, w = images.shape
    period = max(h // 4, 2)
    phase = torch.randint(period, (n,), generator=g)
    vertical = torch.randint(2, (n,), generator=g).bool()
    rows = (torch.arange(h).view(1, h, 1) + phase.view(n, 1, 1)) % period == 0
    cols = (torch.arange(w).view(1, 1, w) + phase.view(n, 1, 1)) % period == 0
    mask = torch.where(vertical.view(n, 1, 1), cols.expand(n, h, w), rows.expand(n, h, w)).unsqueeze(1).float()
    x = _float(images)
    return _uint8(x * (1 - severity * mask) + severity * mask)


def occlusion(images, severity, g):
    """A black square over a random part of each image (``transforms.v2.functional.erase``)."""
    n, c, h, w = images.shape
    side = round(0.45 * severity * min(h, w))
    top = torch.randint(h - side + 1, (n,), generator=g).tolist()
    left = torch.randint(w - side + 1, (n,), generator=g).tolist()
    F = _v2()
    zero = torch.zeros((c, 1, 1), dtype=images.dtype)
    return _each(images, list(zip(top, left)), lambda img, p: F.erase(img, p[0], p[1], side, side, zero))


@dataclass(frozen=True)
class Corruption:
    name: str
    corrupt: Corrupt
    doc: str


CORRUPTIONS = tuple(Corruption(*c) for c in (
    ("gaussian_noise", gaussian_noise, "Gaussian noise (sd 0.35 of the pixel range)"),
    ("impulse_noise", impulse_noise, "salt-and-pepper noise on 20% of the pixels"),
    ("gaussian_blur", gaussian_blur, "Gaussian blur (sigma 1.2 px at 28 px)"),
    ("motion_blur", motion_blur, "motion blur along a random direction (7 px at 28 px)"),
    ("rotate", rotate, "rotation by 15-35 degrees either way"),
    ("shear", shear, "horizontal shear by 15-35 degrees either way"),
    ("scale", scale, "shrinking to 50-70% of the size"),
    ("brightness", brightness, "brightness raised by 45% of the range"),
    ("contrast", contrast, "contrast lowered to 25%"),
    ("elastic", elastic, "elastic deformation (a smooth field, 2.5 px at its peak)"),
    ("stripes", stripes, "bright stripes every quarter of the image"),
    ("occlusion", occlusion, "a black square of 45% of the side"),
))
BY_NAME = {c.name: c for c in CORRUPTIONS}


def corrupted(test: EvalSet, corruption: Corruption, images: torch.Tensor, severity: float = 1.0) -> torch.Tensor:
    """``images`` under ``corruption``, with the generator of (dataset, corruption)."""
    return corruption.corrupt(images, severity, test.generator(f"corruption-{corruption.name}"))


def corrupted_subset(test: EvalSet) -> dict[str, torch.Tensor]:
    """The subset's labels, clean images and each corruption of them (made once per test set)."""
    def make():
        index = test.subset()
        images = test.images[index].cpu()
        made = {"labels": test.labels[index].cpu(), "clean": images}
        made.update({c.name: corrupted(test, c, images) for c in CORRUPTIONS})
        return made

    return test.cached("corruptions", make)


OUTPUTS = (
    Output("mean_corruption_acc", f"mean accuracy over the {len(CORRUPTIONS)} corruptions, on the subset",
           label="mean corruption accuracy", compared=True, per_image=True),
    Output("corruption_acc_clean", "accuracy on the same subset, uncorrupted", label="clean subset accuracy"),
    *(Output(f"corruption_acc_{c.name}", f"accuracy on the subset under {c.doc}",
             label=f"accuracy under {c.name.replace('_', ' ')}") for c in CORRUPTIONS),
)


def examples(images: torch.Tensor, test: EvalSet) -> dict[str, torch.Tensor]:
    return {c.name.replace("_", " "): corrupted(test, c, images) for c in CORRUPTIONS}


@register_evaluation("corruptions", outputs=OUTPUTS, examples=examples,
                     description=f"accuracy under {len(CORRUPTIONS)} MNIST-C-like corruptions and their mean")
def corruptions(subject: Subject, test: EvalSet) -> Measured:
    made = corrupted_subset(test)
    labels = made["labels"]
    right = {name: (subject.predict(made[name]) == labels).numpy() for name in ["clean", *BY_NAME]}
    mean = np.mean([right[c.name] for c in CORRUPTIONS], axis=0)
    values = {f"corruption_acc_{name}": float(r.mean()) for name, r in right.items()}
    values["mean_corruption_acc"] = float(mean.mean())
    return Measured(values, per_image={"mean_corruption_acc": mean},
                    denominators={"mean_corruption_acc": len(CORRUPTIONS)})
