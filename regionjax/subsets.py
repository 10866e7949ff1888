"""Subsets of the players as bitmask integers (docs/method.md §Subsets as bitmasks).

Bit ``i`` of an integer ``S`` is set iff chosen patch ``i`` is in ``S``. Arrays
indexed by subsets have the subset axis first, of length ``2**n``: index ``0``
is the empty set and index ``2**n - 1`` is ``N``. The complement of ``S`` is
``S ^ (2**n - 1)``, so reversing the subset axis maps ``S`` to ``N \\ S``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

MAX_PLAYERS = 30  # 2**30 subsets is already beyond any memory we would use.


def check_num_players(n: int, name: str = "n", limit: int = MAX_PLAYERS) -> int:
  """Returns ``n`` as an int, or raises ValueError naming ``name``.

  ``limit``: the largest ``n`` allowed (``MAX_PLAYERS`` when all ``2**n``
  subsets are stored; ``regionjax.truncated`` stores only a few and allows 62).
  """
  if isinstance(n, (bool, np.bool_)) or int(n) != n:
    raise ValueError(f"{name} must be an integer number of players, got {n!r}")
  n = int(n)
  if n < 1:
    raise ValueError(f"{name} must be at least 1 (got {n}): with no players there is nothing to explain")
  if n > limit:
    if limit == MAX_PLAYERS:
      raise ValueError(
        f"{name}={n} players means 2**{n} subsets, more than any memory holds; use n <= {limit} "
        "(or solver.max_order > 0, which needs only the subsets missing at most k players)"
      )
    raise ValueError(f"{name}={n} players: bitmasks of up to {limit} players fit an int64; use n <= {limit}")
  return n


def num_players_of(length: int, name: str = "subset axis") -> int:
  """``n`` such that ``2**n == length``; raises ValueError otherwise."""
  length = int(length)
  n = length.bit_length() - 1
  if length < 1 or (1 << n) != length:
    raise ValueError(f"{name} has length {length}, which is not a power of two 2**n")
  return n


def full_set(n: int) -> int:
  """The bitmask of ``N = {0, ..., n-1}``."""
  return (1 << n) - 1


def all_subsets(n: int) -> np.ndarray:
  """All subsets in the fixed order ``0, 1, ..., 2**n - 1``."""
  return np.arange(1 << n, dtype=np.int64)


def size(s: int) -> int:
  """``|S|`` of a single bitmask."""
  return int(s).bit_count()


def subsets_of(s: int) -> np.ndarray:
  """All ``T ⊆ S`` in increasing bitmask order (``∅`` first, ``S`` last)."""
  s = int(s)
  out = []
  t = s
  while True:
    out.append(t)
    if t == 0:
      break
    t = (t - 1) & s
  return np.array(out[::-1], dtype=np.int64)


def meets(s: int, n: int) -> np.ndarray:
  """Boolean ``(2**n,)``: ``T ∩ S ≠ ∅`` for every subset ``T``."""
  return (all_subsets(n) & int(s)) != 0


def contains(player: int, n: int) -> np.ndarray:
  """Boolean ``(2**n,)``: ``player ∈ T`` for every subset ``T``."""
  return ((all_subsets(n) >> int(player)) & 1).astype(bool)


def from_indices(indices: Iterable[int]) -> int:
  """Bitmask of a collection of player indices."""
  s = 0
  for i in indices:
    i = int(i)
    if i < 0:
      raise ValueError(f"player index must be non-negative, got {i}")
    s |= 1 << i
  return s


def to_indices(s: int) -> list[int]:
  """Sorted player indices in the bitmask ``S``."""
  s = int(s)
  return [i for i in range(s.bit_length()) if (s >> i) & 1]


def format_subset(s: int, names: Sequence[str] | None = None) -> str:
  """``{0,3,5}`` (or with names) for reports and error messages."""
  idx = to_indices(s)
  if names is not None:
    return "{" + ",".join(str(names[i]) for i in idx) + "}"
  return "{" + ",".join(str(i) for i in idx) + "}"
