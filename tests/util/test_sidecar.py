import os
import signal

import numpy as np
import pytest

from wganlab.metrics.transport import exact_w1
from wganlab.util import sidecar


@pytest.fixture
def side():
    sidecar.start(["transport"])
    yield sidecar._running["transport"]
    sidecar.stop()


def test_work_runs_in_the_side_process_and_gives_the_same_answer(side):
    assert sidecar.call("transport", "os:getpid") == side.process.pid != os.getpid()
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 3.0], [1.0, 4.0]])  # moved up by 3 and by 4: W1 = 3.5
    assert sidecar.call("transport", "wganlab.metrics.transport:exact_w1", a, b) == pytest.approx(3.5)
    assert exact_w1(a, b) == pytest.approx(3.5)


def test_an_error_in_the_side_process_is_raised_here_as_itself(side):
    with pytest.raises(ValueError, match="invalid literal"):
        sidecar.call("transport", "builtins:int", "not a number")
    assert sidecar.call("transport", "builtins:len", [1, 2, 3]) == 3  # it goes on answering


def test_work_sent_to_a_killed_side_process_is_done_here(side):
    os.kill(side.process.pid, signal.SIGKILL)
    side.process.wait()
    assert sidecar.call("transport", "os:getpid") == os.getpid()
    assert sidecar.call("transport", "builtins:sum", [1, 2]) == 3


def test_without_a_side_process_the_work_is_done_here():
    assert "figures" not in sidecar._running
    assert sidecar.call("figures", "os:getpid") == os.getpid()
    with pytest.raises(ZeroDivisionError):
        sidecar.call("figures", "operator:truediv", 1, 0)


def test_an_answer_that_cannot_be_sent_back_is_an_error_that_says_so(side):
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        sidecar.call("transport", "builtins:eval", "lambda: 1")  # a lambda does not pickle
    assert sidecar.call("transport", "os:getpid") == side.process.pid  # and it goes on answering


def test_the_pictures_wait_for_a_free_core_and_the_transport_does_not():
    sidecar.start(["transport", "figures"])
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert sidecar.call("figures", "os:getpid") != os.getpid()  # both are up and answering
        assert sidecar.call("transport", "os:getpid") != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, sidecar._running["figures"].process.pid) == own + sidecar.NICE["figures"]
        assert os.getpriority(os.PRIO_PROCESS, sidecar._running["transport"].process.pid) == own
    finally:
        sidecar.stop()
