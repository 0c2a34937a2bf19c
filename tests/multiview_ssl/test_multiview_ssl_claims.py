from paperzoo.claims import RunContext, run_claim
from paperzoo.multiview_ssl.experiments import CLAIMS


def test_claims_run_at_smoke_over_seeds_and_contrastive_learning_is_above_chance(tmp_path):
    memo: dict = {}
    results = {c.id: run_claim(c, RunContext(preset="smoke", out_dir=tmp_path, memo=memo, seeds=[0, 1]))
               for c in CLAIMS}
    assert all(r.verdict != "error" for r in results.values()), {k: r.message for k, r in results.items()}
    cl = results["multiview_ssl.contrastive_beats_pixels"]
    chance = 1 / cl.measured["held_out_classes"]
    assert all(acc > 10 * chance for acc in cl.per_seed["cl_1nn"])
    assert 10 * chance < cl.measured["pixel_1nn"] < 1 and cl.tests[0]["threshold"] == 0.05
    combos = results["multiview_ssl.composite_helps"].per_seed
    assert len(combos["cl_fp_ip_1nn"]) == 2 and all(0 < v <= 1 for v in combos["cl_fp_ip_1nn"])
    # the composite claim reuses the contrastive claim's CL encoders (same seeds, same configs)
    assert combos["cl_1nn"] == cl.per_seed["cl_1nn"]
    nuisance = results["multiview_ssl.inverse_predictive_discards_nuisance"]
    assert len(nuisance.per_seed["marker_linear_ip0"]) == 2 and "decodable" in nuisance.preconditions[0]["text"]
    assert all(r.figures for r in results.values())
