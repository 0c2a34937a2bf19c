"""Causal representation learning (Schölkopf et al. 2021, arXiv 2102.11107): structural causal models with
interventions and counterfactuals, graph tools (d-separation, back-door adjustment), fitting mechanisms, and the
meta-transfer structural parameter of Bengio et al. 2019 (arXiv 1901.10912)."""

from paperzoo.causal.graph import (ancestors, backdoor_adjustment, backdoor_sets, d_separated, descendants,
                                   is_backdoor_set)
from paperzoo.causal.learning import (NeuralCategorical, fit_additive, fit_categorical, fit_neural_categorical,
                                      fit_scm)
from paperzoo.causal.mechanisms import AdditiveNoise, Categorical, Constant, LinearGaussian
from paperzoo.causal.metatransfer import (Factorised, adapt, adaptation_curves, meta_transfer_loss,
                                          train_structural_parameter)
from paperzoo.causal.scm import SCM, Samples, topological_order

__all__ = [
    "SCM",
    "AdditiveNoise",
    "Categorical",
    "Constant",
    "Factorised",
    "LinearGaussian",
    "NeuralCategorical",
    "Samples",
    "adapt",
    "adaptation_curves",
    "ancestors",
    "backdoor_adjustment",
    "backdoor_sets",
    "d_separated",
    "descendants",
    "fit_additive",
    "fit_categorical",
    "fit_neural_categorical",
    "fit_scm",
    "is_backdoor_set",
    "meta_transfer_loss",
    "topological_order",
    "train_structural_parameter",
]
