import os
import signal

import pytest

from wganlab.util.interrupt import held_interrupt


def test_a_ctrl_c_inside_the_block_is_raised_when_it_ends():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the signal")  # the block runs on: an import is never cut in the middle
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_ctrl_c_the_block_is_transparent():
    with held_interrupt():
        value = 1 + 1
    assert value == 2 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_ctrl_c_goes_to_the_handler_that_was_there():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: seen.append(number))
    try:
        with held_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            assert seen == []
        assert seen == [signal.SIGINT]  # the trainer's "stop after this step", not a KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, previous)
