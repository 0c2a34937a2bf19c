"""The protocol digest (`paperzoo.code_digest`): a changed loop length changes it; the dry run's cap does not."""

import importlib.util
import textwrap

from paperzoo.code_digest import digest


def _trainer_module(tmp_path, name: str, loop: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(f"""
        from paperzoo.engine.dry_run import dry_run_steps

        def train(steps):
            total = 0
            for step in {loop}:
                total += step
            return total
    """))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train


def test_the_dry_run_cap_leaves_the_digest_and_a_longer_loop_changes_it(tmp_path):
    plain = _trainer_module(tmp_path, "plain", "range(steps)")
    capped = _trainer_module(tmp_path, "capped", "range(dry_run_steps(steps))")
    longer = _trainer_module(tmp_path, "longer", "range(dry_run_steps(steps + 1))")
    assert digest([capped], "capped") == digest([plain], "plain")
    assert digest([longer], "longer") != digest([plain], "plain")
