"""GRec and its baselines. Dimension letters used across this package:

B batch, L behaviour-sequence length, S fused tokens per example, D model width, H hidden width,
E experts, K experts chosen per token (top-k), C expert capacity per example, T tasks, U use cases.
"""
