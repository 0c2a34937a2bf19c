from paperzoo.claims import RunContext, run_claim
from paperzoo.metalearning.experiments import CLAIMS


def test_claims_run_at_smoke_and_train_above_chance(tmp_path):
    memo: dict = {}
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, seed=0, memo=memo, stream="metalearning"))
               for c in CLAIMS}
    for result in results.values():
        assert result.verdict != "error", result.message
        assert result.per_seed and result.seeds, result.id  # measured per seed
    first = results["metalearning.beats_pixel_nn"].per_seed
    # 5-way: chance is 0.2 (20 episodes x 25 queries: 0.25 is ~2.8 standard errors above it)
    assert first["protonet_acc_5shot"][0] > 0.4 and first["maml_acc_5shot"][0] > 0.25
    assert results["metalearning.first_order_maml"].per_seed["memory_ratio_fo_over_so"][0] < 1.0
    transfer = results["metalearning.meta_vs_transfer"]
    # the same images per step, each model for its own steps (smoke: Baseline++ 20, ProtoNet 12)
    assert transfer.per_seed["transfer_over_protonet_examples"] == [20 / 12]
    assert transfer.measured["transfer_train_examples"] == 20 * 50 and transfer.measured["transfer_train_steps"] == 20
    # each model's plateau judged on its own trend (no max over models): ProtoNet's held-out trend is shared
    assert transfer.per_seed["protonet_late_trend_pts"] == first["protonet_late_trend_pts"]
    assert {"maml_1shot_late_trend_pts", "maml_5shot_late_trend_pts"} <= set(first)
    assert len(results["metalearning.beats_pixel_nn"].preconditions) == 4
    bn = results["metalearning.transductive_bn_inflates"]
    first_order = results["metalearning.first_order_maml"].per_seed
    # the support-BN-trained model beside the claim is the first_order_maml claim's first-order model
    assert bn.per_seed["support_trained_acc_1shot"] == first_order["fo_acc_1shot"]
    claim = next(c for c in CLAIMS if c.id == bn.id)
    label = claim.check(bn.per_seed).label  # the reason names the mismatch and the honest pipeline's accuracy
    assert "train/test mismatch" in label and f"reaches {bn.per_seed['support_trained_acc_1shot'][0]:.4g}" in label
    assert bn.per_seed["gap_vs_support_trained"][0] == (bn.per_seed["transductive_acc_1shot"][0]
                                                       - bn.per_seed["support_trained_acc_1shot"][0])
