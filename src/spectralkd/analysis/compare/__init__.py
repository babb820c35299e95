"""Distillation dynamics: a teacher's and its students' per-layer measures overlaid, with similarity numbers.

``measures`` (curves, depth matching, correlations), ``plots``, ``report`` (HTML), ``pipeline`` (inputs → folder:
analysis.json files or run directories, analysed on the run's validation data) and ``cli`` (argument parsing).
"""
