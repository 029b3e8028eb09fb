"""Subprocess entry of the exact-resume test: `python tests/train_resume_worker.py WORKDIR NUM_STEPS [DELAY]`.

Trains the tiny test config with jaxir's loop (resuming from WORKDIR's checkpoints if any).
DELAY slows record reading (never the values) so the test can kill a run mid-way.
"""
import sys

from train_helpers import tiny_config

from jaxir.train.loop import train


def main(workdir: str, num_steps: str, delay: str = "0") -> None:
    config = tiny_config(int(num_steps), param_sharding="fsdp")
    config.data.train.kwargs.delay = float(delay)
    config.train.eval_every = 8
    train(config, workdir)


if __name__ == "__main__":
    main(*sys.argv[1:])
