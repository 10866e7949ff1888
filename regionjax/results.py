"""Typed per-image metrics: the sections of ``metrics.json`` as frozen dataclasses, and their one serialiser.

``evaluation.compute_metrics`` builds an :class:`ImageMetrics`; ``report`` reads
its attributes (and so does ``report.html.j2``: Jinja's ``a.b`` reads attributes).
:meth:`ImageMetrics.to_json_dict` gives the ``metrics.json`` dict (sections and
fields in the declaration order below, which ``io.write_json`` sorts on disk;
``None`` fields marked ``omit_if_none`` are left out) and
:meth:`ImageMetrics.from_json_dict` reads it back, failing loudly on a missing or
unknown key.

Values are kept as ``metrics.json`` holds them (:meth:`ImageMetrics.normalised`):
Python ``int``/``float``/``bool``/``str``, lists, and ``None`` for a non-finite
float (``metrics.summary``). Sections with keys made at run time stay dicts:
``Sparsity.shares`` (keyed by threshold). The batch index (``aggregate``,
``transferability``, ``per_image``) is a dict built from these.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from regionjax import baselines as baselines_lib
from regionjax import metrics as metrics_lib

_OMIT = {"omit_if_none": True}


def _optional(default=None):
  """A field left out of the JSON when it is ``None``."""
  return dataclasses.field(default=default, metadata=_OMIT)


def to_json(value: Any) -> Any:
  """Dataclasses (fields in declaration order), lists and dicts to JSON-able values (``metrics.summary`` leaves)."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    out = {}
    for f in dataclasses.fields(value):
      v = getattr(value, f.name)
      if v is None and f.metadata.get("omit_if_none"):
        continue
      out[f.name] = to_json(v)
    return out
  if isinstance(value, dict):
    return {str(k): to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json(v) for v in value]
  return metrics_lib.summary(value)


def _decode(tp, value: Any) -> Any:
  origin = typing.get_origin(tp)
  if dataclasses.is_dataclass(tp):
    return from_json(tp, value)
  if origin in (typing.Union, types.UnionType):
    if value is None:
      return None
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return _decode(args[0], value) if len(args) == 1 else value
  if origin is list:
    if not isinstance(value, list):
      raise TypeError(f"expected a list, got {type(value).__name__}")
    (arg,) = typing.get_args(tp) or (Any,)
    return [_decode(arg, v) for v in value]
  if origin is dict:
    if not isinstance(value, dict):
      raise TypeError(f"expected a dict, got {type(value).__name__}")
    _, arg = typing.get_args(tp) or (str, Any)
    return {k: _decode(arg, v) for k, v in value.items()}
  return value


def from_json(cls: type, d: Any):
  """``cls`` from its :func:`to_json` form; a missing required key or an unknown key raises ``KeyError``."""
  if not isinstance(d, dict):
    raise TypeError(f"{cls.__name__}: expected a dict, got {type(d).__name__}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - set(fields))
  if unknown:
    raise KeyError(f"{cls.__name__}: unknown keys {unknown}")
  kwargs = {}
  for name, f in fields.items():
    if name in d:
      kwargs[name] = _decode(hints[name], d[name])
    elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
      raise KeyError(f"{cls.__name__}: missing key {name!r}")
  return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class ImageSummary:
  """The header of an image's metrics.json (``report.write_outputs`` and ``write_image``)."""

  model: str
  layer: str
  seconds_total: float
  finished: str
  image: int
  class_id: int | None
  n: int
  players: list[int]
  feature_shape: list[int]
  player_names: list[str] | None = _optional()


@dataclasses.dataclass(frozen=True)
class Completeness:
  """``metrics.completeness`` (v2 Axiom 1)."""

  feature_error: float | None
  identity_error: float | None
  image_rmse: float | None
  image_rmse_players: float | None


@dataclasses.dataclass(frozen=True)
class Additivity:
  """Top-K OR surrogate error (v2 §3.1) and the error with all components (0: OR matching)."""

  k: int
  error_mean: float | None
  error_max: float | None
  error_all_components: float | None


@dataclasses.dataclass(frozen=True)
class Sparsity:
  """``shares``: share of elements below each threshold (keys: the thresholds as strings)."""

  near_zero_share: float | None
  eps: float | None
  shares: dict[str, float | None]
  num_elements: int


@dataclasses.dataclass(frozen=True)
class Boundedness:
  rho_mean: float | None
  rho_min: float | None
  rho_max: float | None
  rho_image_mean: float | None


@dataclasses.dataclass(frozen=True)
class TopBoundedness:
  """ρ (players' pixels as denominator) of the ``k`` strongest components."""

  k: int
  mean: float | None
  min: float | None


@dataclasses.dataclass(frozen=True)
class BoundaryBreach:
  breach_max: float | None
  breach_mean: float | None
  others_final_mean: float | None


@dataclasses.dataclass(frozen=True)
class Consistency:
  inconsistency_mean: float | None
  inconsistency_max: float | None


@dataclasses.dataclass(frozen=True)
class SalientAlgorithm2:
  """Algorithm 2 with only the salient components kept, on random multi-patch ``targets`` (v1 App. E/H)."""

  num_kept: int
  targets: list[str]
  controllable_initial_rmse_mean: float | None
  controllable_final_rmse_mean: float | None
  sequential_new_rmse_mean: float | None
  sequential_final_rmse: float | None
  breach_max: float | None
  breach_mean: float | None


@dataclasses.dataclass(frozen=True)
class Controllable:
  initial_rmse_mean: float | None
  final_rmse_mean: float | None


@dataclasses.dataclass(frozen=True)
class Sequential:
  new_rmse_mean: float | None
  final_rmse: float | None


@dataclasses.dataclass(frozen=True)
class Salient:
  num_salient: int
  fraction_salient: float | None
  num_components: int
  num_top_fraction: int
  fraction: float | None
  rmse_salient_only: float | None
  rmse_top_fraction_only: float | None


@dataclasses.dataclass(frozen=True)
class SolverSummary:
  """How the solver did: subsets meeting τ, errors, the optimizer's settings (``unmet``: the first 50)."""

  subsets: int
  met_tau: int
  tau: float | None
  unmet: list[str]
  num_unmet: int
  max_error: float | None
  median_error: float | None
  seconds: float | None
  composition: str
  optimizer: str
  problems_solved: int | None
  lam_final_max: float | None
  continued: int


@dataclasses.dataclass(frozen=True)
class AlphaMovement:
  """``metrics.alpha_movement`` (v2 App. E)."""

  max_one_minus_alpha_full: float | None
  mean_alpha_full: float | None
  mean_by_size: list[float | None]


@dataclasses.dataclass(frozen=True)
class SubsetsMeetingTau:
  value: int
  of: int
  met: bool


@dataclasses.dataclass(frozen=True)
class RhoImageTop:
  value: float | None
  target: float
  met: bool
  players_denominator: float | None
  num_components: int


@dataclasses.dataclass(frozen=True)
class AdditivityTop:
  value: float | None
  k: int
  target: float
  met: bool


@dataclasses.dataclass(frozen=True)
class Faithfulness:
  """The headline figures of one image, each with its target (``evaluation.TARGETS``)."""

  subsets_meeting_tau: SubsetsMeetingTau
  rho_image_top10: RhoImageTop
  additivity_top30: AdditivityTop
  top30_mean_field_size: float | None


@dataclasses.dataclass(frozen=True)
class TopComponent:
  """One of the strongest components: its action field, players and ``‖Δf_S‖₂``; ``names`` with named regions."""

  field: str
  players: list[int]
  norm: float | None
  names: list[str] | None = _optional()


@dataclasses.dataclass(frozen=True)
class DenoiseSide:
  l1: float | None
  near_zero_share: float | None
  near_zero_share_common: float | None
  recon_rmse_mean: float | None
  full_rmse: float | None


@dataclasses.dataclass(frozen=True)
class Timings:
  """Wall time of the run by stage, in seconds (:mod:`regionjax.timings`; not overlapping: ``total`` is their
  sum, the process's wall time up to the end of the report)."""

  startup: float
  baseline: float
  compile: float
  solve: float
  metrics: float
  report: float
  other: float
  total: float


@dataclasses.dataclass(frozen=True)
class Denoise:
  """The components before and after denoising (``denoise.enabled``)."""

  before: DenoiseSide
  after: DenoiseSide
  tau_q: float | None


@dataclasses.dataclass(frozen=True)
class ImageMetrics:
  """metrics.json of one image. ``summary`` is set by the report; ``denoise`` and ``baselines`` when enabled."""

  summary: ImageSummary | None = dataclasses.field(default=None, kw_only=True, metadata=_OMIT)
  completeness: Completeness
  additivity: Additivity
  sparsity: Sparsity
  boundedness: Boundedness
  boundedness_top10pct: TopBoundedness
  boundary_breach: BoundaryBreach
  consistency: Consistency
  consistency_paper: Consistency
  salient_algorithm2: SalientAlgorithm2
  controllable: Controllable
  sequential: Sequential
  salient: Salient
  solver: SolverSummary
  alpha: AlphaMovement
  faithfulness: Faithfulness
  top_components: list[TopComponent]
  denoise: Denoise | None = _optional()
  baselines: list[baselines_lib.Scores] | None = _optional()
  timings: Timings | None = _optional()  # written by the run once its report is done

  def to_json_dict(self) -> dict:
    """The metrics.json dict (JSON-able; the one serialiser of these types)."""
    return to_json(self)

  @classmethod
  def from_json_dict(cls, d: dict) -> ImageMetrics:
    """Reads :meth:`to_json_dict`'s output back; a missing or unknown key raises ``KeyError``."""
    return from_json(cls, d)

  def normalised(self) -> ImageMetrics:
    """The same metrics with the values metrics.json holds (NumPy → Python, non-finite → None)."""
    return self.from_json_dict(self.to_json_dict())


@dataclasses.dataclass(frozen=True)
class TransferPair:
  """Transferability of one pair of same-class images (v2 §3.4)."""

  a: int
  b: int
  class_id: int | None
  ratio: float | None
  k: int
  chance_size_matched: float | None
  chance_uniform: float | None


@dataclasses.dataclass(frozen=True)
class Transferability:
  """Share of top-K action fields common to two images, over same-class pairs, beside its chance levels.

  ``met``: the mean reaches ``target`` (the paper's SiD figure) and ``κ = (mean − chance) / (1 − chance) ≥
  kappa_target`` against the size-matched chance (the same field sizes drawn at random); ``None`` without pairs.
  """

  k: int
  pairs: list[TransferPair]
  mean: float | None
  std: float | None
  chance_size_matched_mean: float | None
  chance_uniform: float | None
  paper_nvae: float
  paper_sid: float
  target: float
  kappa_target: float
  kappa_size_matched: float | None = None
  met: bool | None = None


@dataclasses.dataclass(frozen=True)
class Metrics:
  """What :func:`regionjax.evaluate` returns: one :class:`ImageMetrics` per image (``metrics[i]``) and, for two
  or more images, their transferability."""

  images: list[ImageMetrics]
  transferability: Transferability | None = _optional()

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int) -> ImageMetrics:
    return self.images[i]

  def to_json_dict(self) -> dict:
    return to_json(self)

  @classmethod
  def from_json_dict(cls, d: dict) -> "Metrics":
    return from_json(cls, d)
