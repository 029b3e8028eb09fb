"""The per-epoch learning-rate scheduler ConvIR trains with, for checking jaxir's schedules against it.

Written for jaxir with the behaviour of c-yn/ConvIR pytorch-gradual-warmup-lr/warmup_scheduler/scheduler.py
(GradualWarmupScheduler) at multiplier 1, the only one ConvIR uses: lr * last_epoch / total_epoch while
last_epoch <= total_epoch, then the wrapped scheduler, whose first rate is the current one.
"""
from __future__ import annotations

from torch.optim.lr_scheduler import LRScheduler


class GradualWarmup(LRScheduler):
    def __init__(self, optimizer, total_epoch: int, after_scheduler):
        self.total_epoch = total_epoch
        self.after_scheduler = after_scheduler
        self.finished = False
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch > self.total_epoch:
            if not self.finished:
                self.after_scheduler.base_lrs = list(self.base_lrs)
                self.finished = True
            # The official code returns after_scheduler.get_lr() at its epoch 0, which in the PyTorch 1.8.1
            # ConvIR uses (CosineAnnealingLR: `if self.last_epoch == 0: return [group['lr'] ...]`) is the
            # current rate; PyTorch 2's get_lr answers differently outside its first step, so say it here.
            return [group["lr"] for group in self.optimizer.param_groups]
        return [base * self.last_epoch / self.total_epoch for base in self.base_lrs]

    def step(self, epoch=None):
        if self.finished:
            self.after_scheduler.step()
        else:
            super().step()
