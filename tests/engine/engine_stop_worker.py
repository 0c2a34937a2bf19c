"""A rank of a 2-process DDP run of the engine tests' noisy regression that sends itself SIGTERM during its `at`-th
training step (imported by the spawned ranks of test_engine_stop.py)."""

import os
import signal

from engine_toy import NoisyRegression

from paperzoo.engine import TrainConfig, Trainer
from paperzoo.stopping import Stopped

CFG = TrainConfig(steps=12, batch_size=4, log_every=5, progress=False, device="cpu", dist_timeout_s=120)


class SignalsItself(NoisyRegression):
    def __init__(self, at: int | None, rank: int):
        super().__init__()
        self.at, self.rank, self.steps = at, rank, 0

    def training_step(self, model, batch):
        self.steps += 1
        if self.steps == self.at and int(os.environ["RANK"]) == self.rank:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().training_step(model, batch)


def stop_worker(out: str, at: int | None, signalled_rank: int, resume: bool) -> dict:
    try:
        result = Trainer(SignalsItself(at, signalled_rank), CFG, out_dir=out, stop_on_signals=True).fit(resume)
    except Stopped as e:
        return {"stopped": str(e), "signum": e.signum}
    return {"stopped": None, "params": [p.detach().numpy().copy() for p in result.model.parameters()]}
