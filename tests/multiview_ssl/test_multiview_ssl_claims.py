from paperzoo.claims import RunContext, run_claim
from paperzoo.multiview_ssl.experiments import CLAIMS


def test_claims_run_at_smoke(tmp_path):
    for claim in CLAIMS:
        result = run_claim(claim, RunContext(preset="smoke", out_dir=tmp_path))
        assert result.verdict != "error", result


def test_one_nn_known_answer():
    import torch

    from paperzoo.multiview_ssl.experiments import _one_nn
    z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert _one_nn(z, torch.tensor([0, 0, 1, 1])) == 1.0
    assert _one_nn(z, torch.tensor([0, 1, 0, 1])) == 0.0
