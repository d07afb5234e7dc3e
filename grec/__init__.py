"""GRec, the Generalist Recommender: one multi-task model for many recommendation tasks."""

__version__ = "0.1.0"
