"""Learning-rate schedules against their closed forms and PyTorch's sequences; resuming; errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.errors import InvalidValueError
from chainrule.optim import lr_scheduler as L

EPOCHS = 16
BASE = (0.1, 0.02)


def make_opt():
    """SGD with two groups, lr 0.1 and 0.02."""
    a = cr.tensor([0.0, 0.0], requires_grad=True)
    b = cr.tensor([0.0], requires_grad=True)
    return optim.SGD([{"params": [a]}, {"params": [b], "lr": BASE[1]}], lr=BASE[0])


def lrs(make, epochs=EPOCHS, metrics=None):
    """get_last_lr() after construction and after each of ``epochs`` steps."""
    opt = make_opt()
    sched = make(opt)
    out = [sched.get_last_lr()]
    for k in range(epochs):
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[k])
        out.append(sched.get_last_lr())
        assert out[-1] == [g["lr"] for g in opt.param_groups]
    return np.array(out)


def closed(fn, epochs=EPOCHS):
    return np.array([[fn(base, t) for base in BASE] for t in range(epochs + 1)])


CLOSED_FORMS = {
    "step": (lambda o: L.StepLR(o, step_size=3, gamma=0.5),
             lambda b, t: b * 0.5 ** (t // 3)),
    "exp": (lambda o: L.ExponentialLR(o, gamma=0.9),
            lambda b, t: b * 0.9 ** t),
    "cosine": (lambda o: L.CosineAnnealingLR(o, T_max=5, eta_min=0.001),
               lambda b, t: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * t / 5)) / 2),
    "linear": (lambda o: L.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=4),
               lambda b, t: b * (0.25 + 0.5 * min(t, 4) / 4)),
    "warmup_cosine": (lambda o: L.LinearWarmup(o, 4, after=L.CosineAnnealingLR(o, T_max=8),
                                               start_factor=0.1),
                      lambda b, t: b * (0.1 + 0.9 * t / 4) if t < 4
                      else b * (1 + math.cos(math.pi * (t - 4) / 8)) / 2),
    "warmup_alone": (lambda o: L.LinearWarmup(o, 5),
                     lambda b, t: b * (1 / 3 + (2 / 3) * min(t, 5) / 5)),
    "chained": (lambda o: L.ChainedScheduler([L.LinearLR(o, start_factor=0.5, total_iters=3),
                                              L.ExponentialLR(o, gamma=0.9)]),
                lambda b, t: b * (0.5 + 0.5 * min(t, 3) / 3) * 0.9 ** t),
}


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
def test_schedule_follows_its_closed_form(name):
    make, formula = CLOSED_FORMS[name]
    np.testing.assert_allclose(lrs(make), closed(formula), rtol=1e-12, atol=1e-15)


# get_last_lr() sequences from torch 2.13.0, torch.optim.lr_scheduler, with the same optimizer
# (SGD, groups with lr 0.1 and 0.02) and constructors (LinearWarmup(o, 4, after, 0.1) is spelled
# SequentialLR(o, [LinearLR(o, start_factor=0.1, total_iters=4), after], milestones=[4])), made by:
#   def seq(make, n=16, metrics=None):
#       o = opt(); s = make(o); out = [s.get_last_lr()]
#       for k in range(n):
#           o.step()
#           if metrics is None: s.step()
#           else: s.step(metrics[k])
#           out.append(s.get_last_lr())
#       return out
TORCH_GOLDEN = {
    'step': [[0.1, 0.02], [0.1, 0.02], [0.1, 0.02], [0.05, 0.01], [0.05, 0.01], [0.05, 0.01],
             [0.025, 0.005], [0.025, 0.005], [0.025, 0.005], [0.0125, 0.0025], [0.0125, 0.0025],
             [0.0125, 0.0025], [0.00625, 0.00125], [0.00625, 0.00125], [0.00625, 0.00125],
             [0.003125, 0.000625], [0.003125, 0.000625]],
    'exp': [[0.1, 0.02], [0.09000000000000001, 0.018000000000000002],
            [0.08100000000000002, 0.016200000000000003],
            [0.07290000000000002, 0.014580000000000003],
            [0.06561000000000002, 0.013122000000000003],
            [0.05904900000000002, 0.011809800000000004],
            [0.05314410000000002, 0.010628820000000004],
            [0.04782969000000002, 0.009565938000000005],
            [0.043046721000000024, 0.008609344200000004],
            [0.03874204890000002, 0.007748409780000004],
            [0.03486784401000002, 0.006973568802000004],
            [0.03138105960900001, 0.006276211921800004],
            [0.028242953648100012, 0.0056485907296200035],
            [0.025418658283290013, 0.005083731656658003],
            [0.022876792454961013, 0.004575358490992203],
            [0.020589113209464913, 0.004117822641892983],
            [0.01853020188851842, 0.003706040377703685]],
    'cosine': [[0.1, 0.02], [0.0905463412215599, 0.018185661446562],
               [0.06579634122155989, 0.013435661446562],
               [0.035203658778440096, 0.007564338553437999],
               [0.010453658778440105, 0.002814338553438], [0.001, 0.001],
               [0.010453658778440102, 0.002814338553437999],
               [0.03520365877844012, 0.007564338553438001],
               [0.06579634122155993, 0.013435661446562004],
               [0.09054634122155995, 0.01818566144656201],
               [0.10000000000000005, 0.020000000000000007],
               [0.09054634122155998, 0.018185661446562015],
               [0.06579634122155995, 0.013435661446562008],
               [0.03520365877844014, 0.007564338553438004],
               [0.010453658778440116, 0.0028143385534380016], [0.001, 0.001],
               [0.010453658778440102, 0.002814338553437999]],
    'linear': [[0.025, 0.005], [0.037500000000000006, 0.0075], [0.05, 0.009999999999999998],
               [0.0625, 0.012499999999999997], [0.075, 0.014999999999999996],
               [0.075, 0.014999999999999996], [0.075, 0.014999999999999996],
               [0.075, 0.014999999999999996], [0.075, 0.014999999999999996],
               [0.075, 0.014999999999999996], [0.075, 0.014999999999999996],
               [0.075, 0.014999999999999996], [0.075, 0.014999999999999996],
               [0.075, 0.014999999999999996], [0.075, 0.014999999999999996],
               [0.075, 0.014999999999999996], [0.075, 0.014999999999999996]],
    'warmup_cosine': [[0.010000000000000002, 0.002], [0.03250000000000001, 0.006500000000000001],
                      [0.055000000000000014, 0.011000000000000001],
                      [0.07750000000000003, 0.015500000000000002], [0.1, 0.02],
                      [0.09619397662556434, 0.019238795325112867],
                      [0.08535533905932738, 0.017071067811865473],
                      [0.0691341716182545, 0.013826834323650897], [0.05, 0.009999999999999998],
                      [0.030865828381745515, 0.006173165676349102],
                      [0.014644660940672627, 0.002928932188134525],
                      [0.0038060233744356634, 0.0007612046748871325], [0.0, 0.0],
                      [0.0038060233744356634, 0.0007612046748871326],
                      [0.014644660940672639, 0.0029289321881345275],
                      [0.030865828381745536, 0.0061731656763491065],
                      [0.050000000000000065, 0.010000000000000012]],
    'chained': [[0.05, 0.01], [0.06, 0.012], [0.0675, 0.0135], [0.0729, 0.01458],
                [0.06561, 0.013122], [0.059049000000000004, 0.0118098],
                [0.05314410000000001, 0.01062882], [0.04782969000000001, 0.009565938000000001],
                [0.04304672100000001, 0.0086093442], [0.03874204890000001, 0.007748409780000001],
                [0.03486784401000001, 0.0069735688020000006],
                [0.03138105960900001, 0.0062762119218], [0.028242953648100012, 0.00564859072962],
                [0.025418658283290013, 0.005083731656658],
                [0.022876792454961013, 0.0045753584909922],
                [0.020589113209464913, 0.00411782264189298],
                [0.01853020188851842, 0.003706040377703682]],
    # ReduceLROnPlateau(o, factor=0.5, patience=1, cooldown=1, min_lr=[0.01, 0.004]), METRICS
    'plateau': [[0.1, 0.02], [0.1, 0.02], [0.1, 0.02], [0.1, 0.02], [0.05, 0.01], [0.05, 0.01],
                [0.05, 0.01], [0.05, 0.01], [0.05, 0.01], [0.025, 0.005], [0.025, 0.005],
                [0.025, 0.005], [0.0125, 0.004], [0.0125, 0.004], [0.0125, 0.004], [0.01, 0.004],
                [0.01, 0.004]],
    # ReduceLROnPlateau(o, mode='max', factor=0.1, patience=0, threshold=0.05,
    #                   threshold_mode='abs'), the negated METRICS
    'plateau_max_abs': [[0.1, 0.02], [0.1, 0.02], [0.1, 0.02], [0.010000000000000002, 0.002],
                        [0.0010000000000000002, 0.0002], [0.00010000000000000003, 2e-05],
                        [1.0000000000000004e-05, 2.0000000000000003e-06],
                        [1.0000000000000004e-05, 2.0000000000000003e-06],
                        [1.0000000000000004e-06, 2.0000000000000004e-07],
                        [1.0000000000000005e-07, 2.0000000000000007e-08],
                        [1.0000000000000005e-08, 2.000000000000001e-09],
                        [1.0000000000000005e-08, 2.000000000000001e-09],
                        [1.0000000000000005e-08, 2.000000000000001e-09],
                        [1.0000000000000005e-08, 2.000000000000001e-09],
                        [1.0000000000000005e-08, 2.000000000000001e-09],
                        [1.0000000000000005e-08, 2.000000000000001e-09],
                        [1.0000000000000005e-08, 2.000000000000001e-09]],
}
METRICS = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
PLATEAU = {
    "plateau": (lambda o: L.ReduceLROnPlateau(o, factor=0.5, patience=1, cooldown=1,
                                              min_lr=[0.01, 0.004]), METRICS),
    "plateau_max_abs": (lambda o: L.ReduceLROnPlateau(o, mode="max", factor=0.1, patience=0,
                                                      threshold=0.05, threshold_mode="abs"),
                        [-m for m in METRICS]),
}


@pytest.mark.parametrize("name", list(TORCH_GOLDEN))
def test_matches_pytorch_sequence(name):
    if name in PLATEAU:
        make, metrics = PLATEAU[name]
        got = lrs(make, metrics=metrics)
    else:
        got = lrs(CLOSED_FORMS[name][0])
    np.testing.assert_allclose(got, TORCH_GOLDEN[name], rtol=1e-13, atol=0)


def test_reduce_on_plateau_by_hand():
    # best so far, bad epochs, reductions after more than `patience`=1 bad epochs, one epoch of
    # cooldown after each reduction, floors 0.01 and 0.004:
    #   epoch  1   2   3   4   5   6   7   8   9  10  11  12  13  14  15  16
    #   metric 1  .9 .95  .9 .91 .92  .5  .6  .6  .6  .6  .6  .6  .6  .6  .6
    #   bad    0   0   1   2*  cd  1   0   1   2*  cd  1   2*  cd  1   2*  cd
    expected = [0.1] * 4 + [0.05] * 5 + [0.025] * 3 + [0.0125] * 3 + [0.01] * 2
    expected_b = [0.02] * 4 + [0.01] * 5 + [0.005] * 3 + [0.004] * 5
    got = lrs(PLATEAU["plateau"][0], metrics=METRICS)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-15)
    np.testing.assert_allclose(got[:, 1], expected_b, rtol=1e-15)


def test_plateau_accepts_a_tensor_metric_and_counts_nan_as_bad():
    opt = make_opt()
    sched = L.ReduceLROnPlateau(opt, patience=0)
    sched.step(cr.tensor(1.0))
    assert sched.best == 1.0
    sched.step(float("nan"))
    assert sched.get_last_lr() == pytest.approx([0.01, 0.002])


def test_plateau_covers_groups_added_later():
    opt = make_opt()
    sched = L.ReduceLROnPlateau(opt, patience=0, min_lr=0.001)
    opt.add_param_group({"params": [cr.tensor([1.0], requires_grad=True)], "lr": 0.5})
    sched.step(1.0)
    sched.step(2.0)
    assert sched.get_last_lr() == pytest.approx([0.01, 0.002, 0.05])
    listed = L.ReduceLROnPlateau(make_opt(), patience=0, min_lr=[0.0, 0.0])
    listed.optimizer.add_param_group({"params": [cr.tensor([1.0], requires_grad=True)]})
    listed.step(1.0)
    with pytest.raises(InvalidValueError, match="min_lr"):
        listed.step(2.0)


def test_scheduler_records_initial_lr_and_is_chainable():
    opt = make_opt()
    sched = L.ExponentialLR(opt, gamma=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE)
    assert sched.base_lrs == list(BASE) and sched.last_epoch == 0
    opt.param_groups[0]["lr"] = 1.0          # changed from outside: the schedule follows it
    sched.step()
    assert sched.get_last_lr() == [0.5, 0.01]


def _resume_case(name):
    make = {**{k: v[0] for k, v in CLOSED_FORMS.items()}, **{k: v[0] for k, v in PLATEAU.items()}}
    return make[name], PLATEAU[name][1] if name in PLATEAU else None


@pytest.mark.parametrize("name", ["step", "cosine", "linear", "warmup_cosine", "chained",
                                  "plateau"])
def test_state_dict_round_trip_resumes_the_sequence(name):
    make, metrics = _resume_case(name)

    def advance(opt, sched, ks):
        out = []
        for k in ks:
            opt.step()
            sched.step() if metrics is None else sched.step(metrics[k])
            out.append(sched.get_last_lr())
        return out

    opt = make_opt()
    sched = make(opt)
    advance(opt, sched, range(6))
    saved_opt = opt.state_dict()
    saved = json.loads(json.dumps(sched.state_dict()))      # plain data, JSON-serialisable
    expected = advance(opt, sched, range(6, EPOCHS))

    opt2 = make_opt()
    sched2 = make(opt2)                    # construct first, then load (as in PyTorch)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    assert advance(opt2, sched2, range(6, EPOCHS)) == expected


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(InvalidValueError, match="initial_lr"):
        L.StepLR(make_opt(), step_size=3, last_epoch=4)


@pytest.mark.parametrize("make, message", [
    (lambda o: L.StepLR(o, step_size=0), "step_size"),
    (lambda o: L.StepLR(o, step_size=2.5), "step_size"),
    (lambda o: L.StepLR(o, step_size=2, gamma=-0.1), "gamma"),
    (lambda o: L.ExponentialLR(o, gamma=float("inf")), "gamma"),
    (lambda o: L.CosineAnnealingLR(o, T_max=0), "T_max"),
    (lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=-1.0), "eta_min"),
    (lambda o: L.LinearLR(o, start_factor=0.0), "start_factor"),
    (lambda o: L.LinearLR(o, end_factor=1.5), "end_factor"),
    (lambda o: L.LinearWarmup(o, 0), "warmup_iters"),
    (lambda o: L.ReduceLROnPlateau(o, factor=1.0), "factor"),
    (lambda o: L.ReduceLROnPlateau(o, mode="maximum"), "mode"),
    (lambda o: L.ReduceLROnPlateau(o, threshold_mode="relative"), "threshold_mode"),
    (lambda o: L.ReduceLROnPlateau(o, patience=-1), "patience"),
    (lambda o: L.ReduceLROnPlateau(o, min_lr=[0.0]), "min_lr"),
    (lambda o: L.ChainedScheduler([L.ReduceLROnPlateau(o)]), "ReduceLROnPlateau"),
    (lambda o: L.ChainedScheduler([L.StepLR(make_opt(), 2)], optimizer=o), "another optimizer"),
    (lambda o: L.SequentialLR(o, [L.StepLR(o, 2), L.StepLR(o, 3)], milestones=[]), "milestone"),
    (lambda o: L.StepLR("not an optimizer", 2), "not an Optimizer"),
])
def test_invalid_scheduler_arguments_raise(make, message):
    with pytest.raises(InvalidValueError, match=message):
        make(make_opt())
