"""Spectral analysis of models: run over data, recommend layer pairs, write JSON/CSV/plots/report."""
