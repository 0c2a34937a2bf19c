import pytest

from paperzoo.claims import RunContext, run_claim
from paperzoo.multiview_ssl.experiments import CLAIMS, MARKER_IN_PIXELS

BY_ID = {c.id: c for c in CLAIMS}


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
    assert "cl_fp_1nn" in combos and "cl_ip_1nn" in combos  # the reported arms run at smoke (and full)
    # the composite claim reuses the contrastive claim's CL encoders (same seeds, same configs)
    assert combos["cl_1nn"] == cl.per_seed["cl_1nn"]
    assert combos["cl_late_trend_pts"] == cl.per_seed["cl_late_trend_pts"]
    nuisance = results["multiview_ssl.inverse_predictive_discards_nuisance"]
    assert nuisance.seeds == [0, 1] and len(nuisance.per_seed["marker_linear_ip0"]) == 2
    # the marker is fully readable from the pixels: the first precondition holds, with its value reported
    assert all(v > 0.95 for v in nuisance.per_seed["marker_linear_pixels"])
    assert nuisance.preconditions[0]["text"] == MARKER_IN_PIXELS.text and nuisance.preconditions[0]["held"] is True
    # the supervised reference runs on every seed (smoke trains it, quick does not), 3x the steps of the SSL runs
    assert all(0 <= v <= 1 for k in ("marker_linear_supervised", "task_1nn_supervised") for v in nuisance.per_seed[k])
    assert len(nuisance.per_seed["supervised_late_trend_pts"]) == 2 and nuisance.measured["supervised_steps"] == 120
    assert "plateau" in nuisance.preconditions[2]["text"] and "ip10_late_trend_pts" in nuisance.per_seed
    assert all(r.figures for r in results.values())


@pytest.mark.parametrize("claim_id", ["multiview_ssl.composite_helps",
                                      "multiview_ssl.inverse_predictive_discards_nuisance"])
def test_both_comparisons_plan_a_second_look_at_five_seeds_at_quick(claim_id):
    assert BY_ID[claim_id].planned_looks("quick") == (3, 5)
    assert BY_ID["multiview_ssl.contrastive_beats_pixels"].planned_looks("quick") == (3,)


@pytest.mark.parametrize("readings, held", [([0.99, 1.0, 0.98, 1.0, 0.99], True),  # readable
                                            ([0.26, 0.24, 0.3, 0.25, 0.27], False),  # at chance
                                            ([0.3, 0.9, 0.2, 0.95, 0.4], None)])  # too spread to tell
def test_marker_precondition_holds_only_when_the_pixels_show_the_marker(readings, held):
    assert MARKER_IN_PIXELS.evaluate({"marker_linear_pixels": readings})["held"] is held


@pytest.mark.parametrize("preset, encoder_steps, supervised_steps", [("smoke", 40, 120), ("quick", 450, 0),
                                                                      ("standard", 2700, 2700),
                                                                      ("full", 20_000, 20_000)])
def test_nuisance_claim_trains_its_encoders_and_supervised_reference_as_each_preset_plans(
        tmp_path, preset, encoder_steps, supervised_steps):
    """Standard trains the nuisance claim's encoders (and the supervised reference) 2,700 steps, 6x quick's 450,
    where a pilot seed met the plateau rule; the other claims keep the preset's steps; quick leaves the reference out."""
    from paperzoo.multiview_ssl import experiments

    ctx = RunContext(preset=preset, out_dir=tmp_path, memo={}, seeds=[0])
    assert experiments._nuisance_steps(ctx) == encoder_steps
    assert experiments._supervised_steps(ctx) == supervised_steps
    assert experiments._config(ctx, "CL", 0).steps == {"smoke": 40, "full": 20_000}.get(preset, 450)
