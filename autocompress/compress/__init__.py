"""The four compression knobs, each applicable to any torch model.

Order of application (APQ): architecture -> low-rank -> pruning -> quantization.
"""
