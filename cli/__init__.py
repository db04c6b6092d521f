"""The `dialler` command line."""
