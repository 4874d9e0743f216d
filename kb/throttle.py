"""Sign-in throttling: buckets of failed sign-ins that leak, as pure arithmetic over counts.

A bucket lets `burst` failures through at once, then forgives one each `every` seconds; while it is
full, an attempt is refused (before its password is checked) until one has leaked. Which buckets an
attempt is counted in follows OWASP's "device cookies" (kb/accounts.py picks them):

- from a browser that signed in to that account before (a valid known-device cookie naming it):
  that device's bucket alone, so no stranger's failures ever slow the owner down there;
- from anywhere else: the (account, address) pair's, the account's and the address's.

An attempt is counted before its password is checked (so that attempts sent at once cannot all pass
a check made before any of them is counted); one that succeeds empties its pair's or device's bucket
and takes back only its own count from the account's and address's: an attacker who signs in to
an account of their own does not win back their address's budget for guessing others, and an
owner's sign-in does not forgive a stranger's failures on the owner's account.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    burst: int  # failures let through at once
    every: float  # seconds for one failure to be forgiven


# One person at one place (a pair, or a known device): five typos in a row cost nothing, the sixth
# waits at most 2 minutes; someone guessing there gets 30 tries an hour.
PERSON = Limit(5, 120.0)
# One account from browsers it has never signed in on, every address together: 10 at once, then 10
# an hour (240 a day), all a botnet gets against one password; its owner's own browsers are not held.
ACCOUNT = Limit(10, 360.0)
# One address, every account together (password spraying; or an office behind one address, whose
# people's typos are all counted here): 30 at once, then one a minute.
ADDRESS = Limit(30, 60.0)
FORGET_SECONDS = 24 * 3600.0  # a bucket untouched this long is empty under every limit above (at most 1 h to drain)


@dataclass(frozen=True)
class Count:
    failures: int
    since: float  # when the oldest of them started leaking


def leak(count: Count | None, limit: Limit, now: float) -> Count:
    """The count at `now`, after what has leaked since it was written."""
    if count is None:
        return Count(0, now)
    gone = max(0, int((now - count.since) // limit.every))  # a clock set back forgives nothing
    if gone >= count.failures:
        return Count(0, now)
    return Count(count.failures - gone, count.since + gone * limit.every)


def wait(count: Count, limit: Limit, now: float) -> float:
    """Seconds until a leaked `count` has room for one more failure (0: it has now)."""
    if count.failures < limit.burst:
        return 0.0
    return count.since + (count.failures - limit.burst + 1) * limit.every - now


def charge(counts: dict[str, Count | None], limits: dict[str, Limit], now: float) -> tuple[float, dict[str, Count]]:
    """Count an attempt in every bucket of `limits` when each has room: (0, the new counts). When one
    is full: (seconds until every one has room, {}), counting nothing."""
    leaked = {key: leak(counts.get(key), limit, now) for key, limit in limits.items()}
    longest = max((wait(leaked[key], limit, now) for key, limit in limits.items()), default=0.0)
    if longest > 0:
        return longest, {}
    return 0.0, {key: Count(c.failures + 1, c.since) for key, c in leaked.items()}


def refund(counts: dict[str, Count | None], limits: dict[str, Limit], clear: set[str],
           now: float) -> dict[str, Count | None]:
    """After a success: the buckets in `clear` emptied, and one failure (the attempt's own) taken back
    from the others. None stands for an empty bucket."""
    out: dict[str, Count | None] = {}
    for key, limit in limits.items():
        count = leak(counts.get(key), limit, now)
        out[key] = None if key in clear or count.failures <= 1 else Count(count.failures - 1, count.since)
    return out
