"""Learning-rate schedule: linear warm-up then polynomial decay, stepped once per optimiser step."""

from __future__ import annotations


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, power: float = 2.0) -> float:
    """Multiplier of the base lr for optimiser step ``step`` (0-based).

    ``(step + 1) / warmup_steps`` during warm-up, then ``(1 - (step - warmup) / (total - warmup)) ** power``
    (arcface_torch's polynomial decay, power 2), reaching 0 at ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    return (1.0 - t) ** power
