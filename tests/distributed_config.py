"""`jaxir train --config tests/distributed_config.py`: the tiny training-stack config, FSDP-sharded.

Used by tests/test_distributed.py to launch the same run as 1 process x 8 devices and
2 processes x 4 devices through the real command line.
"""
from train_helpers import tiny_config


def get_config(num_steps: str = "16"):
    config = tiny_config(int(num_steps), param_sharding="fsdp")
    config.train.eval_every = 8
    config.train.ckpt_every = 4
    config.data.train.kwargs.delay = 0.0
    return config
