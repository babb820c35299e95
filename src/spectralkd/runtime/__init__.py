"""The runtime layer below everything that trains: atomic I/O, checkpoints and model cards, distributed set-up,
RNG state, precision, device choice, the JSONL run log, and the run object shared by both trainers."""
