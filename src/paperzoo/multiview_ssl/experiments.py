"""Claims of Tsai et al., "Self-supervised Learning from a Multi-view Perspective" (ICLR 2021, arXiv:2006.05576):
two renderings of one glyph class are the two views; the encoder is judged by 1-NN on held-out alphabets."""
import torch
from torch import nn

from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.data.glyphs import GlyphConfig, glyph_set
from paperzoo.multiview_ssl.losses import composite_ssl_loss, forward_predictive_loss, info_nce, inverse_predictive_loss

PAPER = "Tsai et al., ICLR 2021, arXiv 2006.05576"


def _encoder(size: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 256), nn.ReLU(), nn.Linear(256, 64))


def _one_nn(z: torch.Tensor, y: torch.Tensor) -> float:
    """Leave-one-out 1-NN accuracy by cosine similarity."""
    z = nn.functional.normalize(z, dim=1)
    sim = (z @ z.t()).fill_diagonal_(-2.0)  # (N, N)
    return (y[sim.argmax(1)] == y).float().mean().item()


def _train_and_probe(ctx: RunContext, lambda_fp: float, lambda_ip: float) -> dict:
    torch.manual_seed(ctx.seed)
    chars = glyph_set(GlyphConfig(max_alphabets=ctx.pick(4, 8, 0), renderings=10, seed=ctx.seed), progress=False)
    images = chars.images.float()
    images = images / images.max().clamp_min(1.0)
    train_cls = torch.as_tensor(chars.splits["train"])
    test_cls = torch.as_tensor(chars.splits["test"] + chars.splits["val"])
    train_idx = torch.isin(chars.labels, train_cls).nonzero()[:, 0]
    test_idx = torch.isin(chars.labels, test_cls).nonzero()[:, 0]
    size = images.shape[-1]
    random_enc, enc = _encoder(size), _encoder(size)
    enc.load_state_dict(random_enc.state_dict())
    dec = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, size * size))
    pred = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    params = [*enc.parameters(), *dec.parameters(), *pred.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    by_class = {int(c): (chars.labels == c).nonzero()[:, 0] for c in train_cls}
    classes = list(by_class)
    g = torch.Generator().manual_seed(ctx.seed)
    for _ in range(ctx.pick(30, 300, 3000)):
        batch = [classes[i] for i in torch.randperm(len(classes), generator=g)[:64].tolist()]
        pairs = [by_class[c][torch.randperm(len(by_class[c]), generator=g)[:2]] for c in batch]
        x = images[torch.stack([p[0] for p in pairs])]
        s = images[torch.stack([p[1] for p in pairs])]
        zx, zs = enc(x), enc(s)
        loss = composite_ssl_loss(info_nce(zx, zs, temperature=0.1),
                                  forward_predictive_loss(dec, zx, s) if lambda_fp else None,
                                  inverse_predictive_loss(pred, zx, zs) if lambda_ip else None,
                                  lambda_fp=lambda_fp, lambda_ip=lambda_ip)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        xt, yt = images[test_idx], chars.labels[test_idx]
        return {"1nn": _one_nn(enc(xt), yt), "random_1nn": _one_nn(random_enc(xt), yt),
                "test_classes": len(test_cls), "final_loss": loss.item()}


COMBOS = {"cl": (0.0, 0.0), "cl_fp": (0.05, 0.0), "cl_ip": (0.0, 1.0), "cl_fp_ip": (0.05, 1.0)}


def _combo(ctx: RunContext, name: str) -> dict:
    return ctx.shared(f"multiview_ssl.{name}", lambda: _train_and_probe(ctx, *COMBOS[name]))


def _run_cl_vs_random(ctx: RunContext) -> Measurement:
    r = _combo(ctx, "cl")
    return Measurement({"cl_1nn": r["1nn"], "random_1nn": r["random_1nn"], "test_classes": r["test_classes"],
                        "final_loss": r["final_loss"]})


def _run_combinations(ctx: RunContext) -> Measurement:
    return Measurement({f"{name}_1nn": _combo(ctx, name)["1nn"] for name in COMBOS})


CLAIMS = [
    Claim(id="multiview_ssl.contrastive_beats_random", paper=PAPER,
          statement="Contrastive learning between two views yields a representation far above a random encoder.",
          paper_reports="Omniglot: contrastive representation far above raw/random features",
          criterion="1-NN accuracy on held-out alphabets: cl_1nn >= random_1nn + 0.05",
          run=_run_cl_vs_random, check=lambda m: m["cl_1nn"] >= m["random_1nn"] + 0.05),
    Claim(id="multiview_ssl.composite_helps", paper=PAPER,
          statement="Composing contrastive with forward- and inverse-predictive terms improves downstream accuracy.",
          paper_reports="Omniglot: CL+FP+IP (and CL+IP) above CL alone",
          criterion="1-NN on held-out alphabets: cl_fp_ip_1nn > cl_1nn (single seed)",
          run=_run_combinations, check=lambda m: m["cl_fp_ip_1nn"] > m["cl_1nn"]),
]
TRAIN_METHODS: dict = {}
CLI_VERBS: dict = {}
