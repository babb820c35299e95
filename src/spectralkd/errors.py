"""The one exception type for bad user input.

Library code raises :class:`UserError` with a single line that names the file, layer or value at fault
and what is allowed. The command line prints that line (no traceback) and exits with status 2.
"""


class UserError(Exception):
    """Bad input (file, layer, value, config). The message is one line meant for the user."""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """The user-facing line of an exception (whitespace squashed, cut to ``limit`` characters), also when a
    DataLoader worker re-raised it.

    PyTorch re-raises worker exceptions with the whole worker traceback as the message; the last line
    then reads ``spectralkd.errors.UserError: <message>``.
    """
    text = str(exc).strip()
    if "Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last.split(": ", 1)[-1]
    text = " ".join(text.split()) or type(exc).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for Python's MemoryError, ``torch.OutOfMemoryError`` (GPU) and the CPU allocator's RuntimeError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()
                                              and "CUDA" in text)
