"""The paper's claims run end to end at the smoke preset (training two tiny ViTs once, shared by the claims)."""

from paperzoo.claims import RunContext, run_claim
from paperzoo.registers.experiments import CLAIMS


def test_claims_run_at_smoke(tmp_path):
    memo = {}
    results = [run_claim(c, RunContext("smoke", tmp_path / c.id, memo=memo)) for c in CLAIMS]
    for r in results:
        assert r.verdict in ("reproduced", "not_reproduced"), (r.id, r.message)
        assert r.figures and all(p.endswith(".png") for p in r.figures)
    by_id = {r.id: r.measured for r in results}
    m = by_id["registers.outliers_without_registers"]
    assert 0 <= m["outlier_fraction_0reg"] <= 1 and m["layers"] == 2
    acc = by_id["registers.no_accuracy_cost"]
    assert acc["test_acc_0reg"] > 0.15 and acc["test_acc_4reg"] > 0.15  # learning: 10 classes, chance is 0.1
    assert len(CLAIMS) == 5 and len({c.id for c in CLAIMS}) == 5
