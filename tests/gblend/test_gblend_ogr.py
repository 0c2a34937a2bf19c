"""OGR quantities and blending weights on hand-worked loss sequences."""

import math

import pytest

from paperzoo.gblend.ogr import OGRWindow, blend_weights, ogr_curve, ogr_window


def test_window_quantities_by_hand():
    # N: train 1.0, val 1.5 -> O_N = 0.5; N+n: train 0.5, val 1.4 -> O = 0.9
    w = ogr_window(train_start=1.0, val_start=1.5, train_end=0.5, val_end=1.4)
    assert w.overfit_start == pytest.approx(0.5)
    assert w.overfit_end == pytest.approx(0.9)
    assert w.dG == pytest.approx(0.1)  # 1.5 - 1.4
    assert w.dO == pytest.approx(0.4)  # 0.9 - 0.5
    assert w.ogr == pytest.approx(4.0)


def test_curve_slides_windows_of_n():
    train, val = [2.0, 1.0, 0.5], [2.0, 1.5, 1.4]
    one = ogr_curve(train, val, n=1)
    assert [round(w.ogr, 6) for w in one] == [1.0, 4.0]  # (0.5/0.5), (0.4/0.1)
    (two,) = ogr_curve(train, val, n=2)
    assert two.dG == pytest.approx(0.6) and two.dO == pytest.approx(0.9)
    assert two.ogr == pytest.approx(1.5)


def test_ogr_edge_cases():
    assert OGRWindow(0, 0, dG=0.0, dO=0.3).ogr == math.inf
    assert OGRWindow(0, 0, dG=0.0, dO=0.0).ogr == 0.0
    assert OGRWindow(0, 0, dG=-0.2, dO=0.1).ogr == pytest.approx(0.5)  # absolute value


def test_weights_proportional_to_dG_over_dO_squared():
    w = blend_weights({"a": OGRWindow(0, 0, dG=0.5, dO=0.5), "b": OGRWindow(0, 0, dG=0.1, dO=0.4)})
    # raw: a = 0.5 / 0.25 = 2, b = 0.1 / 0.16 = 0.625
    assert w["a"] == pytest.approx(2 / 2.625)
    assert w["b"] == pytest.approx(0.625 / 2.625)
    assert sum(w.values()) == pytest.approx(1.0)


def test_non_generalising_head_gets_zero_weight():
    w = blend_weights({"a": OGRWindow(0, 0, dG=0.3, dO=0.1), "b": OGRWindow(0, 0, dG=-0.2, dO=0.1),
                       "c": OGRWindow(0, 0, dG=0.0, dO=0.5)})
    assert w == {"a": pytest.approx(1.0), "b": 0.0, "c": 0.0}


def test_zero_overfitting_is_floored_not_infinite():
    w = blend_weights({"a": OGRWindow(0, 0, dG=0.2, dO=0.0), "b": OGRWindow(0, 0, dG=0.2, dO=0.1)},
                      min_overfit=0.01)
    # raw: a = 0.2 / 0.01^2 = 2000, b = 0.2 / 0.01 = 20
    assert w["a"] == pytest.approx(2000 / 2020)
    assert all(math.isfinite(v) for v in w.values())
    # a decrease in overfitting counts by its size
    neg = blend_weights({"a": OGRWindow(0, 0, dG=0.2, dO=-0.1), "b": OGRWindow(0, 0, dG=0.2, dO=0.1)})
    assert neg["a"] == pytest.approx(0.5)


def test_all_heads_without_generalisation_fall_back_to_uniform():
    w = blend_weights({k: OGRWindow(0, 0, dG=-0.1, dO=0.2) for k in ("image", "audio", "fused")})
    assert w == {k: pytest.approx(1 / 3) for k in ("image", "audio", "fused")}


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="as many train as held-out"):
        ogr_curve([1.0, 0.5], [1.0])
    with pytest.raises(ValueError, match="window n must be >= 1"):
        ogr_curve([1.0, 0.5], [1.0, 0.9], n=0)
    with pytest.raises(ValueError, match="finite loss"):
        ogr_window(float("nan"), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one head"):
        blend_weights({})
    with pytest.raises(ValueError, match="min_overfit"):
        blend_weights({"a": OGRWindow(0, 0, 0.1, 0.1)}, min_overfit=0)
