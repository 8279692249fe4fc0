"""Training: one shared loop (``loop.fit``), one module per defense, and ``BUILDERS``, the one place a defense is
registered: how a cell's defense object is made from its training norm, the profile, the ensemble's static models
and the device. A new defense is its module, one entry here, its cells' name in ``advlib.protocols`` and its tests.
"""
from __future__ import annotations

from collections.abc import Callable

from advlib.training.atda import ATDA
from advlib.training.ensemble import EnsembleAT
from advlib.training.loop import Defense, fit, training_norm
from advlib.training.madry import MadryAT
from advlib.training.multinorm import MSD, AvgAT, MaxAT
from advlib.training.natural import Natural
from advlib.training.trades import Trades

#: defense → builder(norm, profile, static models, device) of its ``Defense`` (``advlib.reproduce.make_defense``).
BUILDERS: dict[str, Callable[..., Defense]] = {
    "madry": lambda norm, profile, static, device: MadryAT(norm, profile.train_attack,
                                                           mix_period=profile.defenses["madry"].mix_period),
    "trades": lambda norm, profile, static, device: Trades(norm, profile.train_attack,
                                                           beta=profile.defenses["trades"].beta,
                                                           mix_period=profile.defenses["trades"].mix_period),
    "ensemble": lambda norm, profile, static, device: EnsembleAT(norm, profile.train_attack, static,
                                                                 mix_period=profile.defenses["ensemble"].mix_period),
    "atda": lambda norm, profile, static, device: ATDA(norm, profile.train_attack, device=device,
                                                       mix_period=profile.defenses["atda"].mix_period,
                                                       attack_labels=profile.defenses["atda"].attack_labels),
    "max": lambda norm, profile, static, device: MaxAT(profile.train_attack),
    "avg": lambda norm, profile, static, device: AvgAT(profile.train_attack),
    "msd": lambda norm, profile, static, device: MSD(profile.train_attack),
}

__all__ = ["ATDA", "AvgAT", "BUILDERS", "EnsembleAT", "MSD", "MadryAT", "MaxAT", "Natural", "Trades", "fit",
           "training_norm"]
