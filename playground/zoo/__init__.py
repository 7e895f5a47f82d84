"""The shipped models: checkpoints, their cards, ensembles of them, and the published figures."""
