"""The one backoff formula: how long to wait before trying again after the n-th failure."""

import random

# 2**64 times any sensible base is past any sensible cap; bounding the exponent keeps a float base from
# overflowing after a very long outage (a consumer that keeps reconnecting counts its failures forever).
_MAX_EXPONENT = 64


def exponential_backoff(attempt, *, base, cap, jitter=0.0, rand=random.random):
    """Seconds to wait after failed attempt number `attempt` (1 = the first failure): `base`, then
    doubling, at most `cap`. `jitter` (0 to 1) takes off up to that fraction at random, so many
    clients that failed together do not retry together; 0 (the default) gives the exact figure."""
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    delay = min(cap, base * 2**exponent)
    if jitter:
        delay -= delay * jitter * rand()
    return delay
