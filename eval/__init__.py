"""Evaluation (paper 4.2, tables 1, 3, 4): test sets (`data`), identity encoders (`identity`),
metrics with standard errors (`metrics/`), baselines (`baselines/`), the run (`evaluate`) and the
report (`report`). `piq evaluate` (stages/evaluate.py) ties them together."""
