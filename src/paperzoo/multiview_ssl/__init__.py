"""Self-supervised learning from a multi-view perspective (Tsai et al., ICLR 2021, arXiv:2006.05576)."""
from paperzoo.multiview_ssl.losses import (
    composite_ssl_loss,
    forward_predictive_loss,
    info_nce,
    inverse_predictive_loss,
    jsd_contrastive,
)

__all__ = ["composite_ssl_loss", "forward_predictive_loss", "info_nce", "inverse_predictive_loss", "jsd_contrastive"]
