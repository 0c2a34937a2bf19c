"""SCMs: sampling against exact probabilities, interventions, counterfactuals against hand-worked answers, errors."""

import pytest
import torch

from paperzoo.causal import SCM, AdditiveNoise, Categorical, Constant, LinearGaussian, topological_order
from paperzoo.errors import UserError


def sprinkler() -> SCM:
    return SCM({
        "C": Categorical([0.6, 0.4]),
        "S": Categorical([[0.5, 0.5], [0.9, 0.1]], ["C"]),
        "R": Categorical([[0.8, 0.2], [0.2, 0.8]], ["C"]),
        "W": Categorical([[[1.0, 0.0], [0.1, 0.9]], [[0.1, 0.9], [0.01, 0.99]]], ["S", "R"]),
    })


def test_exact_probabilities_by_hand():
    scm = sprinkler()
    # P(R=1) = 0.6*0.2 + 0.4*0.8
    assert scm.prob({"R": 1}) == pytest.approx(0.44)
    # P(C=1 | R=1) = 0.4*0.8 / 0.44 (Bayes)
    assert scm.prob({"C": 1}, {"R": 1}) == pytest.approx(0.32 / 0.44)
    # P(W=1 | do(S=1)) = sum_r P(r) P(W=1 | S=1, r) = 0.56*0.9 + 0.44*0.99
    assert scm.do({"S": 1}).prob({"W": 1}) == pytest.approx(0.56 * 0.9 + 0.44 * 0.99)


def test_sampling_frequencies_match_exact_probabilities():
    scm = sprinkler()
    data = scm.sample(40_000, seed=0)
    for s in (0, 1):
        for w in (0, 1):
            freq = float(((data["S"] == s) & (data["W"] == w)).double().mean())
            assert freq == pytest.approx(scm.prob({"S": s, "W": w}), abs=0.01)


def test_sampling_is_deterministic_from_seed():
    a, b = sprinkler().sample(100, seed=3), sprinkler().sample(100, seed=3)
    assert all(torch.equal(a[v], b[v]) for v in a)


def test_do_replaces_only_the_intervened_mechanism():
    scm = sprinkler()
    soft = Categorical([0.3, 0.7])
    new = scm.do({"S": 1, "R": soft})
    assert isinstance(new.mechanisms["S"], Constant) and new.mechanisms["R"] is soft
    assert new.mechanisms["C"] is scm.mechanisms["C"] and new.mechanisms["W"] is scm.mechanisms["W"]
    assert isinstance(scm.mechanisms["S"], Categorical)  # the original SCM is unchanged
    assert new.graph["S"] == () and new.graph["R"] == ()
    assert (new.sample(50, seed=0)["S"] == 1).all()


def test_linear_gaussian_counterfactual_hand_worked():
    # X = U_x, Y = 3X + 1 + U_y. Observed X=2, Y=8 -> U_y = 1; had X been 0: Y = 1 + 1 = 2
    scm = SCM({"X": LinearGaussian(std=1.0), "Y": LinearGaussian({"X": 3.0}, bias=1.0, std=0.5)})
    answer = scm.counterfactual({"X": 2.0, "Y": 8.0}, {"X": 0.0}, n=8)
    assert answer.mean("Y") == pytest.approx(2.0, abs=1e-9)
    assert answer.mean("X") == pytest.approx(0.0)


def test_counterfactual_of_a_mediated_effect_with_a_callable_mechanism():
    # Y = X^2 + U_y with a torch callable; observed X=1, Y=3 -> U_y = 2; do(X=3): Y = 11
    scm = SCM({"X": LinearGaussian(), "Y": AdditiveNoise(lambda x: x ** 2, ["X"])})
    assert scm.counterfactual({"X": 1.0, "Y": 3.0}, {"X": 3.0}, n=4).mean("Y") == pytest.approx(11.0)


def test_discrete_counterfactual_exact_and_sampled():
    # Y = X with prob 0.8 (inverse-CDF coupling). Seen X=1, Y=1: u in [0.2, 1). With X=0, Y=1 iff u >= 0.8: 0.25
    scm = SCM({"X": Categorical([0.5, 0.5]), "Y": Categorical([[0.8, 0.2], [0.2, 0.8]], ["X"])})
    assert scm.counterfactual_prob({"Y": 1}, {"X": 1, "Y": 1}, {"X": 0}) == pytest.approx(0.25, abs=1e-12)
    sampled = scm.counterfactual({"X": 1, "Y": 1}, {"X": 0}, n=20_000, seed=1).prob("Y", 1)
    assert sampled == pytest.approx(0.25, abs=0.015)


def test_partial_evidence_counterfactual_by_likelihood_weighting():
    # Y = 2X + U_y, X, U_y ~ N(0, 1); seen only Y = 3: E[Y_{X=0.5}] = 1 + (1/5) * 3
    scm = SCM({"X": LinearGaussian(), "Y": LinearGaussian({"X": 2.0})})
    assert scm.counterfactual({"Y": 3.0}, {"X": 0.5}, n=100_000, seed=0).mean("Y") == pytest.approx(1.6, abs=0.03)


def test_cycle_is_named():
    with pytest.raises(UserError, match="cycle: (A -> B -> C -> A|B -> C -> A -> B|C -> A -> B -> C)"):
        SCM({"A": LinearGaussian({"C": 1.0}), "B": LinearGaussian({"A": 1.0}), "C": LinearGaussian({"B": 1.0})})


def test_unknown_variables_are_errors():
    with pytest.raises(UserError, match="unknown parent 'Q'"):
        topological_order({"A": ("Q",)})
    scm = sprinkler()
    with pytest.raises(UserError, match=r"unknown variable\(s\) \['Z'\] in do\(\)"):
        scm.do({"Z": 1})
    with pytest.raises(UserError, match="probability zero"):
        SCM({"X": Categorical([1.0, 0.0])}).prob({"X": 0}, {"X": 1})
    with pytest.raises(UserError, match="hard interventions"):
        scm.counterfactual({"C": 1}, {"S": Categorical([0.5, 0.5])})


def test_bad_tables_are_errors():
    with pytest.raises(UserError, match="sum to 1"):
        Categorical([0.5, 0.6])
    with pytest.raises(UserError, match="needs 2 axes"):
        Categorical([0.5, 0.5], ["A"])
