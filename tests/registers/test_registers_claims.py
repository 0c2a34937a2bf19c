"""The paper's claims run end to end at the smoke preset over two seeds (two tiny ViTs trained per seed, shared by
the claims); the artifact claims need a scale the tiny models do not have, and say so (at quick and standard, at
once and without training)."""

from paperzoo.claims import RunContext, run_claim
from paperzoo.registers.experiments import CLAIMS, MIN_OUTLIER_FRACTION, MIN_TOKENS


def test_claims_run_at_smoke_over_seeds_and_unmet_regimes_are_inconclusive(tmp_path):
    memo = {}
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, memo=memo, seeds=[0, 1])) for c in CLAIMS}
    for r in results.values():
        assert r.verdict != "error", (r.id, r.message)
        assert r.figures and all(p.endswith(".png") for p in r.figures)
        assert r.per_seed and all(len(v) == 2 for v in r.per_seed.values()), r.id
    outliers = results["registers.outliers_without_registers"]
    assert outliers.verdict == "inconclusive" and "300M parameters" in outliers.reason
    assert outliers.measured["layers"] == 2 and outliers.measured["parameters"] < 1e6
    assert all(0 <= f <= 1 for f in outliers.per_seed["outlier_fraction_0reg"])
    # the 40-step smoke ViTs grow no tokens above 3x the median norm: the probes are undefined (None), and the
    # claims that need them say so (the probes themselves: test_registers_analysis.py, and on checkpoints)
    info = results["registers.outliers_hold_global_information"]
    assert max(info.per_seed["outlier_tokens_0reg"]) < MIN_TOKENS and None in info.per_seed["class_acc_outlier"]
    assert info.verdict == "inconclusive" and "enough outlier tokens" in info.reason and info.tests == []
    accuracy = results["registers.no_accuracy_cost"]
    assert all(0 <= a <= 1 for a in accuracy.per_seed["test_acc_0reg"] + accuracy.per_seed["test_acc_4reg"])
    assert len(accuracy.per_seed["late_trend_0reg_pts"]) == 2  # the plateau rule's input, per seed
    # 40 smoke steps leave both models below the 30% the precondition asks for: not judged, and it says why
    assert accuracy.verdict == "inconclusive" and accuracy.tests == []
    assert accuracy.preconditions[0]["held"] is False and "test_acc_0reg" in accuracy.reason
    attention = results["registers.cleaner_attention_maps"]
    assert max(attention.per_seed["outlier_fraction_0reg"]) < MIN_OUTLIER_FRACTION
    assert attention.verdict == "inconclusive" and "regime of the paper's maps" in attention.reason
    assert len(CLAIMS) == 5 and len({c.id for c in CLAIMS}) == 5


def test_without_outlier_tokens_the_probe_claims_and_the_maps_are_not_judged():
    """The precondition paths the quick models take: no high-norm tokens -> undefined probes (None) and a 0
    fraction -> `inconclusive`, with the reason."""
    by_id = {c.id: c for c in CLAIMS}
    info = next(p for p in by_id["registers.outliers_hold_global_information"].preconditions
                if "enough outlier tokens" in p.text)
    assert info.evaluate({"class_acc_outlier": [0.3, None], "position_acc_outlier": [0.2, 0.1],
                          "pixel_mse_outlier": [0.1, 0.1], "outlier_tokens_0reg": [30, 3]})["held"] is False
    assert info.evaluate({"class_acc_outlier": [0.3, 0.4], "position_acc_outlier": [0.2, 0.1],
                          "pixel_mse_outlier": [0.1, 0.1], "outlier_tokens_0reg": [30, 40]})["held"] is True
    maps = next(p for p in by_id["registers.cleaner_attention_maps"].preconditions if "regime" in p.text)
    assert maps.evaluate({"outlier_fraction_0reg": [0.0, 0.0], "outlier_tokens_0reg": [0, 0]})["held"] is False


def test_quick_and_standard_skip_the_artifact_claims_at_once_without_training(tmp_path):
    """At quick and standard the artifact claims cannot be decided (no model at the paper's scale): each is
    `skipped` with the scale it needs, the parameters of the preset's ViT and what would decide it, and nothing is
    trained for it (the memo stays empty)."""
    from paperzoo.registers.experiments import _config, _trained_parameters
    from paperzoo.registers.model import VisionTransformer

    for preset in ("quick", "standard"):
        memo = {}
        ctx = RunContext(preset, tmp_path, memo=memo, seeds=[0, 1, 2])
        c = _config(ctx, 0, 0)
        built = VisionTransformer(img_size=28, patch_size=4, in_chans=1, embed_dim=c.embed_dim, depth=c.depth,
                                  num_heads=c.num_heads, num_classes=10)
        assert _trained_parameters(ctx) == sum(p.numel() for p in built.parameters())
        for claim in CLAIMS:
            if claim.id == "registers.no_accuracy_cost":
                continue
            result = run_claim(claim, RunContext(preset, tmp_path / claim.id, memo=memo, seeds=[0, 1, 2]))
            assert result.verdict == "skipped", (claim.id, result.reason)
            assert "300M parameters" in result.reason and f"{_trained_parameters(ctx):,}" in result.reason
            assert ("--weights" in result.reason) != (claim.id == "registers.cleaner_attention_maps")
        assert memo == {}
