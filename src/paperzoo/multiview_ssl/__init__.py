"""Self-supervised learning from a multi-view perspective (Tsai et al., ICLR 2021, arXiv:2006.05576)."""
from paperzoo.multiview_ssl.distributed import gather_with_grad, info_nce_global
from paperzoo.multiview_ssl.losses import (
    composite_ssl_loss,
    forward_predictive_loss,
    info_nce,
    inverse_predictive_loss,
    jsd_contrastive,
)
from paperzoo.multiview_ssl.methods import ConvEncoder, MultiviewSSL, MultiviewSSLConfig, ViewConfig
from paperzoo.multiview_ssl.study import (GlyphEncoder, GlyphSSLConfig, add_corner_marker, evaluate,
                                          pixel_marker_accuracy, train_glyph_ssl, train_glyph_supervised)

__all__ = ["ConvEncoder", "GlyphEncoder", "GlyphSSLConfig", "MultiviewSSL", "MultiviewSSLConfig", "ViewConfig",
           "add_corner_marker", "composite_ssl_loss", "evaluate", "forward_predictive_loss", "gather_with_grad",
           "info_nce", "info_nce_global", "inverse_predictive_loss", "jsd_contrastive", "pixel_marker_accuracy",
           "train_glyph_ssl", "train_glyph_supervised"]
