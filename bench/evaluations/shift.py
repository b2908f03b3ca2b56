"""Shift invariance: accuracy under small translations, and Zhang's shift consistency.

Zhang (2019, "Making Convolutional Networks Shift-Invariant Again") measures downsampling by
*consistency*: the share of images whose predicted class is the same under two random shifts.
Here every image of the fixed subset gets, per shift size s = 1..MAX_SHIFT, one offset (dx, dy)
with max(|dx|, |dy|) = s, and two offsets in [-MAX_SHIFT, MAX_SHIFT]^2 for consistency, all
drawn once per dataset.  A translation moves the pixels and fills the vacated border with 0
(no wrap-around: ``torch.roll`` would move a stroke to the opposite edge).
"""

from __future__ import annotations

import numpy as np
import torch

from .registry import Measured, Output, register_evaluation
from .subject import Subject, EvalSet

MAX_SHIFT = 3


def translate(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``images`` (N, C, H, W) moved ``dx`` pixels right and ``dy`` down, zero-filled."""
    h, w = images.shape[-2:]
    out = torch.zeros_like(images)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def translate_each(images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Image i moved by ``offsets[i]`` = (dx, dy)."""
    out = torch.empty_like(images)
    for dx, dy in torch.unique(offsets, dim=0).tolist():
        chosen = ((offsets[:, 0] == dx) & (offsets[:, 1] == dy)).nonzero().flatten()
        out[chosen] = translate(images[chosen], dx, dy)
    return out


def ring(size: int) -> torch.Tensor:
    """Every offset (dx, dy) with max(|dx|, |dy|) == size, in a fixed order."""
    r = range(-size, size + 1)
    return torch.tensor([(dx, dy) for dy in r for dx in r if max(abs(dx), abs(dy)) == size]).reshape(-1, 2)


def offsets_of(test: EvalSet, n: int) -> dict[str, torch.Tensor]:
    """The fixed offsets of the subset's ``n`` images: one per size, and the consistency pair."""
    g = test.generator("shift")
    chosen = {}
    for size in range(1, MAX_SHIFT + 1):
        options = ring(size)
        chosen[f"size{size}"] = options[torch.randint(len(options), (n,), generator=g)]
    pair = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2, n, 2), generator=g)
    chosen["first"], chosen["second"] = pair[0], pair[1]
    return chosen


def shifted(test: EvalSet) -> dict[str, torch.Tensor]:
    """The subset's labels and shifted images (made once per test set)."""
    def make():
        index = test.subset()
        images = test.images[index].cpu()
        made = {"labels": test.labels[index].cpu(), "size0": images}
        made.update({k: translate_each(images, v) for k, v in offsets_of(test, len(index)).items()})
        return made

    return test.cached("shift", make)


OUTPUTS = (
    Output("shift_acc", f"mean accuracy on the subset with each image shifted by 1 to {MAX_SHIFT} pixels "
                        "(one fixed offset per size and image, zero fill)",
           label=f"accuracy under shifts of 1-{MAX_SHIFT} px", compared=True, per_image=True),
    Output("shift_consistency", f"share of subset images predicted the same class under two random shifts "
                                f"of up to ±{MAX_SHIFT} pixels (Zhang 2019)",
           label="shift consistency", compared=True, per_image=True),
    Output("shift_acc_<pixels>", f"accuracy on the subset with every image shifted by 0 to {MAX_SHIFT} "
                                 "pixels (0: unshifted)", label="accuracy at a shift size"),
)


def examples(images: torch.Tensor, test: EvalSet) -> dict[str, torch.Tensor]:
    return {f"shifted by ({dx}, {dy}) px": translate(images, dx, dy)
            for dx, dy in ((MAX_SHIFT, 0), (0, -MAX_SHIFT), (-MAX_SHIFT, MAX_SHIFT))}


@register_evaluation("shift", outputs=OUTPUTS, examples=examples,
                     description=f"accuracy under translations of up to ±{MAX_SHIFT} px and shift consistency")
def shift(subject: Subject, test: EvalSet) -> Measured:
    made = shifted(test)
    labels = made["labels"]
    right = {s: (subject.predict(made[f"size{s}"]) == labels).numpy() for s in range(MAX_SHIFT + 1)}
    same = (subject.predict(made["first"]) == subject.predict(made["second"])).numpy()
    per_size = np.mean([right[s] for s in range(1, MAX_SHIFT + 1)], axis=0)
    values = {f"shift_acc_{s}": float(right[s].mean()) for s in right}
    values.update(shift_acc=float(per_size.mean()), shift_consistency=float(same.mean()))
    return Measured(values, per_image={"shift_acc": per_size, "shift_consistency": same.astype(np.float64)},
                    denominators={"shift_acc": MAX_SHIFT, "shift_consistency": 1})
