"""Evaluation: rollouts shared with DPO, `edgesmith eval`, and its report."""
