"""One run and a grid of runs: the trainer, the runs/ layout, executors (in-process, workers, torchrun, Slurm)."""
