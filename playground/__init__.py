"""meta-learning playground: few-shot learning on Omniglot, made visible."""

__version__ = "0.1.0"
