"""Pure rules of the dialler: no I/O and no clock reads (time is always passed in)."""
