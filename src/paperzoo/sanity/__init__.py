"""paperzoo's own sanity claim: a small CNN trained by the engine on real MNIST digits (not a paper; it keeps the
pipeline real data -> engine -> claim -> report honest). Lives beside the papers so that the engine imports no
claims."""

from paperzoo.sanity.experiments import SanityCNN, SanityConfig, SmallCNN

__all__ = ["SanityCNN", "SanityConfig", "SmallCNN"]
