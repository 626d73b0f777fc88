"""Animators: make an expressive variant of a neutral face from a driving clip (paper 3.2, B.2).

One interface (`base.Animator`), one module per backend: the paper's LivePortrait (weights from
a local folder) and the offline mesh-driven animator. The `animate` stage calls the interface
and never knows which backend runs.
"""
