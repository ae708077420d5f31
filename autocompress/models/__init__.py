"""MobileNet-style networks built from a search space and an architecture choice."""
