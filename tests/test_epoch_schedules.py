"""Schedules stepped once per epoch (ConvIR, Stripformer) against PyTorch's schedulers stepped the official way."""
import warnings

import numpy as np
import pytest

from jaxir.train.optim import make_schedule

torch = pytest.importorskip("torch")


def official_rates(make_scheduler, epochs, lr=2e-4):
    """The rate of every epoch of a loop that steps its scheduler once before training and after each epoch
    (ConvIR's train.py; Stripformer steps only after each epoch: pass `prestep=False` via make_scheduler)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler, prestep = make_scheduler(opt)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if prestep:
            scheduler.step()
        for _ in range(epochs):
            rates.append(opt.param_groups[0]["lr"])
            scheduler.step()
    return np.array(rates)


def jaxir_rates(cfg, epochs, steps_per_epoch):
    schedule = make_schedule({**cfg, "steps_per_epoch": steps_per_epoch}, epochs * steps_per_epoch)
    per_step = np.array([float(schedule(s)) for s in range(epochs * steps_per_epoch)])
    held = per_step.reshape(epochs, steps_per_epoch)
    assert (held == held[:, :1]).all(), "the rate must be constant within an epoch"
    return held[:, 0]


@pytest.mark.parametrize("warm_epochs", [3, 1])
def test_convir_warmup_then_cosine(warm_epochs):
    from jaxir.torch_reference.schedulers import GradualWarmup

    epochs, spe = 20, 3

    def convir(opt):
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs - warm_epochs, eta_min=1e-6)
        return GradualWarmup(opt, warm_epochs, cosine), True

    cfg = {"lr": 2e-4, "schedule": "gradual_warmup_cosine", "warmup_steps": warm_epochs * spe, "min_lr": 1e-6}
    np.testing.assert_allclose(jaxir_rates(cfg, epochs, spe), official_rates(convir, epochs), rtol=1e-5)


def test_stripformer_cosine_per_epoch():
    epochs, spe = 12, 4

    def stripformer(opt):
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=1e-7), False

    cfg = {"lr": 2e-4, "schedule": "cosine", "warmup_steps": 0, "min_lr": 1e-7}
    np.testing.assert_allclose(jaxir_rates(cfg, epochs, spe), official_rates(stripformer, epochs), rtol=1e-5)


def test_gradual_warmup_cosine_needs_whole_epochs():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_schedule({"lr": 1e-4, "schedule": "gradual_warmup_cosine", "warmup_steps": 3}, 30)
