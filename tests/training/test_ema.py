import copy

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from wganlab.training.ema import GeneratorAverage, warmed_ema


def _net(batch_norm: bool):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)]
    if batch_norm:
        layers.insert(1, torch.nn.BatchNorm1d(8))
    return torch.nn.Sequential(*layers)


def _average(cls, batch_norm: bool, fn):
    net = _net(batch_norm)
    average = cls(net, multi_avg_fn=fn, use_buffers=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    data = torch.randn(12, 16, 3, generator=torch.Generator().manual_seed(1))
    for i, batch in enumerate(data):
        optimizer.zero_grad()
        net(batch).pow(2).mean().backward()
        optimizer.step()
        average.update_parameters(net)
        if i == 6:  # a restore (the trainer's rollback and resume): copied into the same tensors
            saved = copy.deepcopy(average.state_dict())
            average.load_state_dict(saved)
            net.load_state_dict(copy.deepcopy(net.state_dict()))
    return average


def test_the_direct_average_is_torchs_bit_for_bit_with_and_without_integer_buffers():
    for batch_norm in (False, True):
        for fn in (get_ema_multi_avg_fn(0.9), warmed_ema(0.99)):
            ours, torchs = _average(GeneratorAverage, batch_norm, fn), _average(AveragedModel, batch_norm, fn)
            assert int(ours.n_averaged) == int(torchs.n_averaged) == 12
            for a, b in zip(ours.state_dict().values(), torchs.state_dict().values()):
                assert torch.equal(a, b)
    assert _average(GeneratorAverage, False, get_ema_multi_avg_fn(0.9))._lists is not None  # the direct path ran


def test_the_average_follows_a_move_of_its_module():
    """A module moved by .to() swaps its tensors' data: the kept lists must still reach it."""
    net = _net(False)
    average = GeneratorAverage(net, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    average.update_parameters(net)
    average.update_parameters(net)  # the lists are kept from here
    average.to(torch.float64)
    net.to(torch.float64)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    before = [p.clone() for p in average.module.parameters()]
    average.update_parameters(net)
    for b, p in zip(before, average.module.parameters()):
        assert p.dtype == torch.float64 and torch.allclose(p, 0.5 * b + 0.5)


def test_the_ramp_constant_picks_the_average_ramp_2_uniform_ramp_3_linear_in_age():
    """ema_ramp c: until the cap binds, update s weighs ~s^(c - 2): c = 2 is the plain mean of every
    update since the start, c = 3 weighs the s-th update (counting the first copy as 1) by s."""
    iterates = [torch.full((2,), float(v)) for v in (3.0, -1.0, 4.0, 1.0, 5.0, 9.0)]
    for ramp, weights in ((2.0, [1, 1, 1, 1, 1, 1]), (3.0, [1, 2, 3, 4, 5, 6])):
        update, average = warmed_ema(0.9999, ramp), [iterates[0].clone()]  # the first update copies
        for t, current in enumerate(iterates[1:]):
            update(average, [current], torch.tensor(t))
        expected = sum(w * float(x[0]) for w, x in zip(weights, iterates)) / sum(weights)
        assert torch.allclose(average[0], torch.full((2,), expected), atol=1e-5), (ramp, average[0], expected)
    with pytest.raises(ValueError, match="ramp must be > 1"):
        warmed_ema(0.999, 1.0)
