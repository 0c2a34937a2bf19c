from paperzoo.claims import RunContext, run_claim
from paperzoo.multiview_ssl.experiments import CLAIMS


def test_claims_run_at_smoke_and_contrastive_learning_is_above_chance(tmp_path):
    results = {c.id: run_claim(c, RunContext(preset="smoke", out_dir=tmp_path)) for c in CLAIMS}
    assert all(r.verdict in ("reproduced", "not_reproduced") for r in results.values()), results
    cl = results["multiview_ssl.contrastive_beats_random"].measured
    chance = 1 / cl["held_out_classes"]
    assert cl["cl_1nn"] > max(10 * chance, cl["random_1nn"])
    combos = results["multiview_ssl.composite_helps"].measured
    assert combos["seeds"] == 2 and 0 < combos["cl_fp_ip_1nn_mean"] <= 1
    assert all(r.figures for r in results.values())
