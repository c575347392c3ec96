from core.backoff import exponential_backoff


def test_it_doubles_from_the_base_after_each_failure():
    assert [exponential_backoff(n, base=30, cap=3600) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


def test_it_never_exceeds_the_cap():
    assert exponential_backoff(8, base=60, cap=3600) == 3600
    assert exponential_backoff(10_000, base=0.5, cap=30.0) == 30.0


def test_it_treats_no_failure_yet_as_the_first():
    assert exponential_backoff(0, base=60, cap=3600) == 60


def test_it_takes_off_at_most_the_jitter_fraction():
    assert exponential_backoff(3, base=10, cap=100, jitter=0.5, rand=lambda: 1.0) == 20
    assert exponential_backoff(3, base=10, cap=100, jitter=0.5, rand=lambda: 0.0) == 40
