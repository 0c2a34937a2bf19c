from paperzoo.claims import RunContext, run_claim
from paperzoo.metalearning.experiments import CLAIMS


def test_claims_run_at_smoke_and_train_above_chance(tmp_path):
    memo: dict = {}
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, seed=0, memo=memo)) for c in CLAIMS}
    for result in results.values():
        assert result.verdict != "error", result.message
    first = results["metalearning.beats_pixel_nn"].measured
    # 5-way: chance is 0.2 (20 episodes x 25 queries: 0.25 is ~2.8 standard errors above it)
    assert first["protonet_acc_5shot"] > 0.4 and first["maml_acc_5shot"] > 0.25
    assert results["metalearning.first_order_maml"].measured["memory_ratio_fo_over_so"] < 1.0
