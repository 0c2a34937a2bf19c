"""Per-rank functions for the multiview_ssl distributed tests (imported by the spawned ranks)."""

import torch
import torch.distributed as dist
from torch import nn

from paperzoo.engine import distributed as D
from paperzoo.multiview_ssl.distributed import gather_with_grad, info_nce_global
from paperzoo.multiview_ssl.losses import info_nce


def global_batch(pairs: int = 8, features: int = 6, dim: int = 5):
    """The same inputs and encoder on every process: (x (N, F), s (N, F), encoder F -> dim)."""
    g = torch.Generator().manual_seed(11)
    x, s = torch.randn(pairs, features, generator=g), torch.randn(pairs, features, generator=g)
    torch.manual_seed(3)
    return x, s, nn.Linear(features, dim)


def info_nce_plain_gather(z_x: torch.Tensor, z_s: torch.Tensor, temperature: float) -> torch.Tensor:
    """The pitfall: negatives from `dist.all_gather`, which carries no gradient; only this rank's own rows (put
    back in place, as is commonly done) keep theirs. Same forward value as `info_nce_global`."""
    rank, world, (b, d) = dist.get_rank(), dist.get_world_size(), z_x.shape
    both = torch.cat([z_x, z_s], 1)  # (B, 2D)
    parts = [torch.empty_like(both) for _ in range(world)]
    dist.all_gather(parts, both.detach())
    parts[rank] = both
    gathered = torch.cat(parts)  # (W*B, 2D)
    return info_nce(gathered[:, :d], gathered[:, d:], temperature, anchors=range(rank * b, (rank + 1) * b))


def _ddp_step(encoder: nn.Module, x: torch.Tensor, s: torch.Tensor, loss_fn, temperature: float):
    encoder.zero_grad(set_to_none=True)
    z = encoder(torch.cat([x, s]))  # (2B, D): one forward of the DDP module per step
    z_x, z_s = z.chunk(2)
    loss = loss_fn(z_x, z_s, temperature)
    loss.backward()  # DDP averages the parameter gradients over the ranks
    return loss.item(), [p.grad.tolist() for p in encoder.parameters()]  # lists: tensors would share memory


def global_infonce_worker(temperature: float) -> dict:
    env = D.dist_env()
    D.init_process_group(env, torch.device("cpu"), 60.0)
    try:
        x, s, encoder = global_batch()
        b = len(x) // env.world_size
        rows = slice(env.rank * b, (env.rank + 1) * b)
        ddp = nn.parallel.DistributedDataParallel(encoder)
        result = {}
        result["loss"], result["grads"] = _ddp_step(ddp, x[rows], s[rows], info_nce_global, temperature)
        result["plain_loss"], result["plain_grads"] = _ddp_step(ddp, x[rows], s[rows], info_nce_plain_gather,
                                                                temperature)
        # the gather alone: y = gather(v); d(sum_r <y, w_r>)/dv on rank q = sum_r w_r[rows of q]
        v = torch.full((2, 3), float(env.rank), requires_grad=True)
        gathered = gather_with_grad(v)
        weights = torch.arange(12.0).reshape(4, 3) * (env.rank + 1)  # a different weight on each rank
        (gathered * weights).sum().backward()
        result["gathered"], result["v_grad"] = gathered.tolist(), v.grad.tolist()
        try:
            gather_with_grad(torch.zeros(env.rank + 1, 2))
            result["shape_error"] = None
        except ValueError as e:
            result["shape_error"] = str(e)
        return result
    finally:
        D.teardown()


def identical_views_config(batch_size: int, steps: int = 3):
    """The train method with augmentation off (the views are the image: every process sees the same pixels) and
    plain SGD, so a DDP run can be compared with one process on the union batch."""
    from paperzoo.engine.trainer import TrainConfig
    from paperzoo.multiview_ssl.methods import MultiviewSSLConfig, ViewConfig

    return MultiviewSSLConfig(channels=4, feature_dim=8, views=ViewConfig((1.0, 1.0), (1.0, 1.0), 0.0, 0.0),
                              train=TrainConfig(steps=steps, batch_size=batch_size, optimizer="sgd", lr=0.1,
                                                log_every=steps, progress=False, device="cpu", seed=4))


def train_method_worker(batch_size: int) -> list[float]:
    """Rank r of `paperzoo train multiview_ssl` (the engine starts DDP from the spawned environment)."""
    from paperzoo.engine.trainer import Trainer
    from paperzoo.multiview_ssl.methods import MultiviewSSL

    cfg = identical_views_config(batch_size)
    model = Trainer(MultiviewSSL(cfg), cfg.train).fit().model
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist()
