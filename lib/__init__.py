"""The shared library behind every function in `api/`. Nothing here imports from `api/`."""
