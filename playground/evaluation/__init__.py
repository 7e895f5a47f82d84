"""Measuring models: few-shot accuracy with honest intervals, comparisons, pace, style shift."""
