from pvelab.twin.watchdog import DEFAULT_TIMEOUT, WatchdogTimer


def test_first_write_arms_with_the_default_timeout():
    timer = WatchdogTimer()
    assert not timer.armed
    timer.feed(b"\n", now=100.0)
    assert timer.armed
    assert not timer.expired(100.0 + DEFAULT_TIMEOUT - 0.1)
    assert timer.expired(100.0 + DEFAULT_TIMEOUT)


def test_petting_pushes_the_deadline():
    timer = WatchdogTimer()
    timer.feed(b"timeout 5\n", now=0.0)
    timer.feed(b"1", now=4.0)
    assert not timer.expired(8.9)
    assert timer.expired(9.0)


def test_timeout_line_sets_and_clamps_the_timeout():
    timer = WatchdogTimer()
    timer.feed(b"timeout 30\n", now=0.0)
    assert timer.timeout == 30
    timer.feed(b"timeout 999999\n", now=0.0)
    assert timer.timeout == 3600


def test_timeout_line_split_across_writes_is_understood():
    timer = WatchdogTimer()
    timer.feed(b"time", now=0.0)
    timer.feed(b"out 7\n", now=0.0)
    assert timer.timeout == 7


def test_magic_close_disarms():
    timer = WatchdogTimer()
    timer.feed(b"timeout 3\n", now=0.0)
    timer.feed(b"V\n", now=1.0)
    timer.writer_closed()
    assert not timer.armed
    assert not timer.expired(100.0)


def test_close_without_magic_keeps_running():
    timer = WatchdogTimer()
    timer.feed(b"timeout 3\n", now=0.0)
    timer.writer_closed()
    assert timer.armed
    assert timer.expired(3.0)


def test_state_for_readers_has_a_wall_clock_deadline():
    timer = WatchdogTimer()
    assert timer.to_dict() == {"armed": False, "timeout": DEFAULT_TIMEOUT, "deadline": None}
    timer.feed(b"timeout 4\n", now=50.0)
    assert timer.to_dict() == {"armed": True, "timeout": 4.0, "deadline": 54.0}

