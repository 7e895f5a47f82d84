from __future__ import annotations

import torch

from playground.training import cosine_schedule


def _lrs(sched, opt, steps):
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_cosine_schedule_decays_to_the_floor_and_resumes_without_restarting():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = cosine_schedule(opt, 10)
    lrs = _lrs(sched, opt, 10)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert abs(lrs[-1] - 0.05) < 1e-9
    state = sched.state_dict()
    # Resume the same run with a longer budget: the rate keeps going down, it does not jump back up.
    opt2 = torch.optim.SGD([p], lr=1.0)
    sched2 = cosine_schedule(opt2, 20)
    sched2.load_state_dict(state)
    more = _lrs(sched2, opt2, 10)
    assert all(a >= b for a, b in zip(more, more[1:]))
    assert more[0] <= 0.5 + 1e-9 and abs(more[-1] - 0.05) < 1e-9
