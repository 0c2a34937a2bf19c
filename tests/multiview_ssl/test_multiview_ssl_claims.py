from paperzoo.claims import RunContext, run_claim
from paperzoo.multiview_ssl.experiments import CLAIMS


def test_claims_run_at_smoke(tmp_path):
    for claim in CLAIMS:
        result = run_claim(claim, RunContext(preset="smoke", out_dir=tmp_path))
        assert result.verdict != "error", result
