"""Training: one shared loop (``loop.fit``) and one module per defense."""
from advlib.training.atda import ATDA
from advlib.training.ensemble import EnsembleAT
from advlib.training.loop import fit, training_norm
from advlib.training.madry import MadryAT
from advlib.training.multinorm import MSD, AvgAT, MaxAT
from advlib.training.natural import Natural
from advlib.training.trades import Trades

__all__ = ["ATDA", "AvgAT", "EnsembleAT", "MSD", "MadryAT", "MaxAT", "Natural", "Trades", "fit", "training_norm"]
