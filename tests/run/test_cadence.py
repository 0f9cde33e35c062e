"""Checkpoint cadence (run/cadence.py): by steps when given, else by the clock."""

from scalelab.run.cadence import CheckpointCadence


def test_every_k_steps_and_the_clock_ignored():
    c = CheckpointCadence(every=7, seconds=0.0, last=0.0)
    assert [s for s in range(1, 30) if c.due(s, now=1e9)] == [7, 14, 21, 28]


def test_by_the_clock_when_no_step_count():
    for every in (None, 0):
        c = CheckpointCadence(every=every, seconds=60.0, last=100.0)
        assert not c.due(5, now=160.0)  # exactly 60 s: not yet (strictly more than)
        assert c.due(5, now=160.5)
        c.saved(now=160.5)
        assert not c.due(6, now=200.0) and c.due(6, now=221.0)
