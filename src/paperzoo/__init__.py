"""paperzoo: a deep-learning reading list turned into tested modules, reproducible claims and reports."""

__version__ = "0.1.0"
