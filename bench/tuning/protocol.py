"""Which protocol produced a grid's verdicts, in one phrase for the answer box."""

from __future__ import annotations

FIELD_WORDS = {"lr": "learning rate", "weight_decay": "weight decay", "momentum": "momentum",
               "warmup_epochs": "warm-up"}


def protocol_sentence(invocation: dict) -> str:
    """"each at its own tuned learning rate, 8 trials each" or "all at lr 0.001, not tuned"
    (``invocation``: config.json)."""
    tuning = invocation.get("tuning")
    if tuning:
        tuned = [FIELD_WORDS.get(name, name) for name in tuning.get("tuned", ["lr"])]
        what = tuned[0] if len(tuned) == 1 else ", ".join(tuned[:-1]) + " and " + tuned[-1]
        return f"each at its own tuned {what}, {tuning.get('trials')} trials each"
    base = invocation.get("base_config", {})
    lr = base.get("lr")
    return f"all at lr {lr:g}, not tuned" if isinstance(lr, (int, float)) else "not tuned"
