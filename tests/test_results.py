"""regionjax.results: the typed metrics.json of one image and its one serialiser."""

import dataclasses
import json
import math

import pytest

from regionjax import baselines as baselines_lib
from regionjax import results as r

SECTIONS = [
  "summary",
  "completeness",
  "additivity",
  "sparsity",
  "boundedness",
  "boundedness_top10pct",
  "boundary_breach",
  "consistency",
  "consistency_paper",
  "salient_algorithm2",
  "controllable",
  "sequential",
  "salient",
  "solver",
  "alpha",
  "faithfulness",
  "top_components",
]


def example(**changes) -> r.ImageMetrics:
  side = r.DenoiseSide(l1=2.5, near_zero_share=0.5, near_zero_share_common=0.6, recon_rmse_mean=0.01, full_rmse=0.02)
  scores = {f.name: 0.25 for f in dataclasses.fields(baselines_lib.Scores)}
  scores.update(method="ours", num_components=15, k=6, empty_fields=0, rho_declared_top=None)
  m = r.ImageMetrics(
    summary=r.ImageSummary(
      model="planted",
      layer="features",
      seconds_total=8.5,
      finished="2026-11-30 23:00:00",
      image=0,
      class_id=None,
      n=4,
      players=[0, 1, 2, 3],
      feature_shape=[23],
      player_names=["sky", "tree", "road", "car"],
    ),
    completeness=r.Completeness(feature_error=0.1, identity_error=1e-7, image_rmse=0.02, image_rmse_players=0.01),
    additivity=r.Additivity(k=6, error_mean=0.003, error_max=0.01, error_all_components=0.0),
    sparsity=r.Sparsity(near_zero_share=0.7, eps=0.01, shares={"0.001": 0.5, "0.01": 0.7}, num_elements=345),
    boundedness=r.Boundedness(rho_mean=0.9, rho_min=0.5, rho_max=1.0, rho_image_mean=0.8),
    boundedness_top10pct=r.TopBoundedness(k=2, mean=0.99, min=0.98),
    boundary_breach=r.BoundaryBreach(breach_max=0.0, breach_mean=0.0, others_final_mean=0.3),
    consistency=r.Consistency(inconsistency_mean=0.01, inconsistency_max=0.02),
    consistency_paper=r.Consistency(inconsistency_mean=0.03, inconsistency_max=None),
    salient_algorithm2=r.SalientAlgorithm2(
      num_kept=6,
      targets=["{0,1}", "{1,2,3}"],
      controllable_initial_rmse_mean=0.4,
      controllable_final_rmse_mean=0.0,
      sequential_new_rmse_mean=0.01,
      sequential_final_rmse=0.0,
      breach_max=0.0,
      breach_mean=0.0,
    ),
    controllable=r.Controllable(initial_rmse_mean=0.4, final_rmse_mean=0.0),
    sequential=r.Sequential(new_rmse_mean=0.01, final_rmse=0.0),
    salient=r.Salient(
      num_salient=6,
      fraction_salient=0.4,
      num_components=15,
      num_top_fraction=9,
      fraction=0.6,
      rmse_salient_only=0.01,
      rmse_top_fraction_only=None,
    ),
    solver=r.SolverSummary(
      subsets=16,
      met_tau=15,
      tau=0.05,
      unmet=["{0,2}"],
      num_unmet=1,
      max_error=0.06,
      median_error=0.01,
      seconds=3.0,
      composition="none",
      optimizer="adam",
      problems_solved=16,
      lam_final_max=None,
      continued=0,
    ),
    alpha=r.AlphaMovement(max_one_minus_alpha_full=0.2, mean_alpha_full=0.9, mean_by_size=[0.5, 0.7, 0.8, 0.9]),
    faithfulness=r.Faithfulness(
      subsets_meeting_tau=r.SubsetsMeetingTau(value=15, of=16, met=False),
      rho_image_top10=r.RhoImageTop(value=1.0, target=0.8, met=True, players_denominator=1.0, num_components=2),
      additivity_top30=r.AdditivityTop(value=0.006, k=6, target=0.3, met=True),
      top30_mean_field_size=1.5,
    ),
    top_components=[
      r.TopComponent(field="{0}", players=[0], norm=3.0, names=["sky"]),
      r.TopComponent(field="{2,3}", players=[2, 3], norm=2.0),
    ],
    denoise=r.Denoise(before=side, after=dataclasses.replace(side, l1=1.5), tau_q=0.1),
    baselines=[baselines_lib.Scores(**scores)],
  )
  return dataclasses.replace(m, **changes)


def test_round_trip_through_json():
  m = example()
  d = json.loads(json.dumps(m.to_json_dict()))
  assert list(d) == SECTIONS + ["denoise", "baselines"]
  assert list(d["solver"])[:3] == ["subsets", "met_tau", "tau"]
  assert d["top_components"][0] == {"field": "{0}", "players": [0], "norm": 3.0, "names": ["sky"]}
  assert "names" not in d["top_components"][1]  # optional fields left out when None
  back = r.ImageMetrics.from_json_dict(d)
  assert back == m
  assert isinstance(back.faithfulness.rho_image_top10, r.RhoImageTop)
  assert isinstance(back.baselines[0], baselines_lib.Scores) and back.top_components[1].names is None


def test_optional_sections_are_left_out():
  m = example(summary=None, denoise=None, baselines=None)
  d = m.to_json_dict()
  assert list(d) == SECTIONS[1:]
  assert r.ImageMetrics.from_json_dict(d) == m


def test_normalised_holds_what_the_json_holds():
  import numpy as np

  m = example(completeness=r.Completeness(np.float32(0.5), float("nan"), np.float64(math.inf), np.float64(0.25)))
  n = m.normalised()
  assert n.completeness == r.Completeness(0.5, None, None, 0.25)
  assert type(n.completeness.feature_error) is float


@pytest.mark.parametrize(
  "path",
  [("completeness",), ("solver", "median_error"), ("faithfulness", "rho_image_top10", "target"), ("summary", "n")],
)
def test_missing_or_renamed_key_fails_loudly(path):
  d = example().to_json_dict()
  inner = d
  for k in path[:-1]:
    inner = inner[k]
  value = inner.pop(path[-1])
  with pytest.raises(KeyError, match=f"missing key '{path[-1]}'"):
    r.ImageMetrics.from_json_dict(d)
  inner[path[-1] + "_renamed"] = value
  with pytest.raises(KeyError, match="unknown keys"):
    r.ImageMetrics.from_json_dict(d)


def test_wrong_shape_fails_loudly():
  d = example().to_json_dict()
  d["top_components"] = {"field": "{0}"}
  with pytest.raises(TypeError, match="expected a list"):
    r.ImageMetrics.from_json_dict(d)
