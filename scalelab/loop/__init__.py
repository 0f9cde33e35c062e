"""The loop from plan to runs and back: emit the grid a plan asks for (emit.py), check a fit against
runs it did not see (check.py)."""
