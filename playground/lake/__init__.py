"""Lake et al.'s 20 one-shot runs: the runs, their evaluator, and the beat-the-human game."""
