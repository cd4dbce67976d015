import subprocess
import sys

import pytest
import torch

from wganlab.training.optim import EagerAdam, EagerRMSprop


def _train(optimizer_class, **options):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = optimizer_class(net.parameters(), lr=1e-2, **options)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0 - i / 40)
    data = torch.randn(30, 64, 5, generator=torch.Generator().manual_seed(1))
    for batch in data:
        optimizer.zero_grad(set_to_none=True)
        net(batch).pow(2).mean().backward()
        optimizer.step()
        schedule.step()
    return net, optimizer


@pytest.mark.parametrize("stock, eager, options", [
    (torch.optim.Adam, EagerAdam, dict(betas=(0.5, 0.9), fused=True)),
    (torch.optim.Adam, EagerAdam, dict(betas=(0.8, 0.99), fused=True, weight_decay=0.1, maximize=True, eps=1e-6)),
    (torch.optim.Adam, EagerAdam, dict(betas=(0.5, 0.9), foreach=True)),
    (torch.optim.RMSprop, EagerRMSprop, dict(foreach=True)),
])
def test_the_dynamo_free_optimisers_make_torchs_updates_bit_for_bit(stock, eager, options):
    net_a, opt_a = _train(stock, **options)
    net_b, opt_b = _train(eager, **options)
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a["param_groups"] == state_b["param_groups"]
    for key in state_a["state"]:
        for name, value in state_a["state"][key].items():
            assert torch.equal(value, state_b["state"][key][name]), name
    opt_a.load_state_dict(state_b)  # checkpoints move between the two


def test_a_training_run_never_imports_torch_dynamo():
    code = ("import sys, wganlab; wganlab.train(steps=3, eval_every=0, hidden=8, depth=1, batch_size=16, "
            "eval_samples=50, w1_samples=50, ema=0.999); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_dynamo_free_adam_matches_torch_through_param_groups_missing_gradients_and_a_restore():
    def run(optimizer_class):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        first, last = list(net[0].parameters()), list(net[2].parameters())
        optimizer = optimizer_class([{"params": first}, {"params": last, "lr": 3e-3}], lr=1e-2, fused=True)
        data = torch.randn(20, 64, 5, generator=torch.Generator().manual_seed(1))
        for i, batch in enumerate(data):
            optimizer.zero_grad(set_to_none=True)
            net(batch).pow(2).mean().backward()
            if i % 3 == 1:
                net[0].bias.grad = None  # a parameter without a gradient: torch skips it
            optimizer.step()
            if i == 10:  # a checkpoint restored mid-run replaces every state tensor
                optimizer.load_state_dict(optimizer.state_dict())
        return net, optimizer

    net_a, opt_a = run(torch.optim.Adam)
    net_b, opt_b = run(EagerAdam)
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)
    for key, values in opt_a.state_dict()["state"].items():
        for name, value in values.items():
            assert torch.equal(value, opt_b.state_dict()["state"][key][name]), name


def test_the_direct_fused_adam_step_is_taken_and_gives_way_to_hooks_and_a_loaded_state():
    """After its first step EagerAdam calls the fused kernel itself (bit for bit torch's, above);
    a step hook registered later still runs, and a state loaded mid-run is the one stepped."""
    net_a, opt_a = _train(torch.optim.Adam, betas=(0.5, 0.9), fused=True)
    net_b, opt_b = _train(EagerAdam, betas=(0.5, 0.9), fused=True)
    assert opt_b._direct is not None and opt_b._direct[0] is opt_b.state  # the direct path ran
    calls = []
    handle = opt_b.register_step_pre_hook(lambda *args: calls.append(1))
    for net, opt in ((net_a, opt_a), (net_b, opt_b)):
        opt.zero_grad(set_to_none=True)
        net(torch.ones(4, 5)).pow(2).mean().backward()
        opt.step()
    handle.remove()
    assert calls == [1]
    import copy

    saved = opt_a.state_dict()
    opt_a.load_state_dict(copy.deepcopy(saved))  # (loading shares the tensors: one copy each)
    opt_b.load_state_dict(copy.deepcopy(saved))  # a restore: the lists kept before are the old state's
    for net, opt in ((net_a, opt_a), (net_b, opt_b)):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            net(torch.ones(4, 5)).pow(2).mean().backward()
            opt.step()
    assert opt_b._direct[0] is opt_b.state
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)
    state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert all(torch.equal(state_a[k][n], state_b[k][n]) for k in state_a for n in state_a[k])
