"""advlib: the tested companion to Li, Chen, Wang & Carin (2019), "On Norm-Agnostic Robustness of
Adversarial Training" — MNIST data, Madry's CNN, ℓp geometry, PGD / S-O attacks, Hessian tools,
four adversarial-training defenses, evaluation and the Table 1 reproduction."""
from advlib.attacks import fgsm, pgd, run_attack, second_order
from advlib.data import load_mnist
from advlib.models import MadryCNN
from advlib.specs import AttackSpec

__version__ = "0.1.0"
__all__ = ["AttackSpec", "MadryCNN", "fgsm", "load_mnist", "pgd", "run_attack", "second_order", "__version__"]
