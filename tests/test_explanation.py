"""regionjax.explanation and regionjax.explainer: rj.explain → Explanation → save/load → evaluate, and the
checks at the library's boundary."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax as rj
from regionjax import explanation as explanation_lib
from regionjax import testing

OPTIONS = rj.SolverOptions(lam=200.0, learning_rate=0.02, steps=120, tau=0.05, chunk_size=4, composition="max")
PLAYERS = rj.Players.grid_cells(3, 3, [0, 1, 2, 3])


@pytest.fixture(scope="module")
def gen():
  return testing.PlantedGenerator()


@pytest.fixture(scope="module")
def exp(gen):
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  return rj.explain(
    gen, codes, layer="feature", players=PLAYERS, options=OPTIONS, baseline_codes=200, show_progress=False
  )


def test_explain_finds_the_planted_fields(exp, gen):
  assert len(exp) == 2 and exp.n == 4 and exp.feature_shape == (23,)
  assert exp.alpha.shape == (2, 5, 23) and exp.info.alpha_subsets[0] == 15  # α_N, then the 4 singletons
  assert not exp.unmet.any()
  planted = set(gen.planted.fields)
  for j in range(2):
    norms = exp.norms()[j]
    strongest = set(np.argsort(-norms)[: len(planted)].tolist())
    assert strongest == planted
    # OR matching (v1 eq. 11): the components rebuild every minimal feature
    np.testing.assert_allclose(rj.or_matching(exp.components()[j]), exp.minimal_features()[j], rtol=0, atol=1e-5)
  # u(∅) = f0 exactly, u(S) = f0 + α_S ⊙ (f − f0)
  np.testing.assert_array_equal(np.asarray(exp.minimal_feature(0))[0], np.asarray(exp.f0))
  s = 0b0101
  np.testing.assert_allclose(
    exp.minimal_feature(s)[1], exp.f0 + exp.alphas()[1, s] * (exp.f[1] - exp.f0), rtol=0, atol=1e-6
  )
  assert exp.top(3).shape == (2, 3) and exp.field(0b11).sum() == exp.masks[:2].sum()


def test_one_image_of_a_batch(exp):
  one = exp[1]
  assert len(one) == 1 and one.info.indices == (1,)
  np.testing.assert_array_equal(one.components()[0], exp.components()[1])
  np.testing.assert_array_equal(np.asarray(one.codes["z"])[0], np.asarray(exp.codes["z"])[1])
  # a pytree: its arrays are leaves, its description static, so it passes through jit
  assert len(jax.tree.leaves(one)) == len(jax.tree.leaves(exp)) == 11
  total = jax.jit(lambda e: e.f.sum() + e.alpha.sum())(one)
  assert float(total) == pytest.approx(float(np.asarray(one.f).sum() + np.asarray(one.alpha).sum()), rel=1e-5)


def test_save_load_round_trip(exp, gen, tmp_path):
  path = exp.save(str(tmp_path / "saved"))
  assert sorted(os.listdir(path)) == ["explanation.json", "explanation.npz"]
  manifest = json.load(open(os.path.join(path, "explanation.json")))
  assert manifest["schema"] == explanation_lib.SCHEMA and manifest["layer"] == "feature"
  assert manifest["generator"]["fingerprint"] == exp.info.generator != ""
  assert len(manifest["images"]) == 2 and all(len(im["fingerprint"]) == 64 for im in manifest["images"])
  back = rj.load(path)
  np.testing.assert_allclose(back.components(), exp.components(), rtol=0, atol=1e-6)
  np.testing.assert_array_equal(back.error, exp.error)
  assert back.info == exp.info
  assert back.options == OPTIONS
  # metrics need the generator; the loaded explanation gives the same ones
  opts = rj.MetricOptions(top_k=6, transfer_k=6, consistency_contexts=2)
  a, b = rj.evaluate(exp[:1], gen, opts), rj.evaluate(back[:1], gen, opts)
  assert a.to_json_dict() == b.to_json_dict()
  assert isinstance(a, rj.Metrics) and isinstance(a[0], rj.ImageMetrics)
  assert a[0].faithfulness.rho_image_top10.value > 0.99


def test_evaluate_batch_has_transferability(exp, gen):
  m = rj.evaluate(exp, gen, rj.MetricOptions(top_k=6, transfer_k=6, consistency_contexts=2))
  assert len(m) == 2 and m.transferability is not None
  assert m.transferability.mean == 1.0 and len(m.transferability.pairs) == 1  # the planted fields repeat
  assert rj.Metrics.from_json_dict(m.to_json_dict()) == m


def test_dense_components_only_when_asked(exp, tmp_path):
  exp.save(str(tmp_path / "compact"))
  assert not os.path.exists(tmp_path / "compact" / "components.npz")
  exp.save(str(tmp_path / "dense"), dense=True)
  with np.load(tmp_path / "dense" / "components.npz") as z:
    np.testing.assert_allclose(z["components"], exp.components(), rtol=0, atol=0)


def test_load_refuses_damage_and_never_unpickles(exp, tmp_path):
  path = exp.save(str(tmp_path / "saved"))
  npz = os.path.join(path, "explanation.npz")
  data = bytearray(open(npz, "rb").read())
  data[len(data) // 2] ^= 0xFF
  open(npz, "wb").write(bytes(data))
  with pytest.raises(rj.LoadError, match="digest"):
    rj.load(path)
  # an object array (which np.load would unpickle) is refused even with a matching digest
  evil = tmp_path / "evil"
  exp.save(str(evil))
  arrays = dict(np.load(evil / "explanation.npz"))
  arrays["codes_0"] = np.array([object()], dtype=object)
  np.savez(evil / "explanation.npz", **arrays)
  m = json.load(open(evil / "explanation.json"))
  m.pop("sha256")
  json.dump(m, open(evil / "explanation.json", "w"))
  with pytest.raises(rj.LoadError):
    rj.load(str(evil))


def test_load_refuses_old_and_foreign_directories(tmp_path):
  old = tmp_path / "old"
  old.mkdir()
  np.savez(old / "components.npz", components=np.zeros((2, 3)))
  with pytest.raises(rj.LoadError, match="regionjax 0.1"):
    rj.load(str(old))
  with pytest.raises(rj.LoadError, match="no saved explanation"):
    rj.load(str(tmp_path))
  newer = tmp_path / "newer"
  newer.mkdir()
  json.dump(
    {"format": explanation_lib.FORMAT, "schema": explanation_lib.SCHEMA + 1}, open(newer / "explanation.json", "w")
  )
  with pytest.raises(rj.LoadError, match="newer"):
    rj.load(str(newer))


def test_codes_round_trip_keeps_scalars_and_structure():
  codes = {"z": np.ones((2, 3), np.float32), "truncation": 0.4, "extra": [np.arange(2), None, (1, 2.5)]}
  leaves = []
  desc = explanation_lib._codes_structure(codes, leaves)
  back = explanation_lib._codes_rebuild(json.loads(json.dumps(desc)), dict(enumerate(leaves)))
  assert isinstance(back["truncation"], float) and back["truncation"] == 0.4
  assert back["extra"][1] is None and back["extra"][2] == (1, 2.5)
  np.testing.assert_array_equal(back["z"], codes["z"])


def test_players_grid_center_and_masks():
  p = rj.Players.center(6, 6, 9)
  assert p.cells == (7, 8, 9, 13, 14, 15, 19, 20, 21) or sorted(p.cells) == list(p.cells)
  r = p.resolve(64, 64)
  assert r.masks.shape == (9, 64, 64) and r.masks.sum(0).max() == 1
  with pytest.raises(ValueError, match="outside"):
    rj.Players.grid_cells(3, 3, [9])
  with pytest.raises(ValueError, match="boolean"):
    rj.Players.from_masks(np.ones((2, 4, 4)))


# --------------------------------------------------------------- boundary checks
class _Channels:
  """The planted generator with channels-first images."""

  layers = ("feature",)
  num_classes = None

  def __init__(self):
    self.inner = testing.PlantedGenerator()

  def sample_codes(self, rng, num, classes=None):
    return {"z": self.inner.sample_codes(rng, num)["z"]}

  def encode(self, codes, layer):
    return self.inner.encode({**codes, "label": None}, layer)

  def decode(self, codes, layer, features):
    return jnp.transpose(self.inner.decode(codes, layer, features), (0, 3, 1, 2))

  def generate(self, codes):
    return self.decode(codes, "feature", self.encode(codes, "feature"))


class _Bright(_Channels):
  def decode(self, codes, layer, features):
    return (self.inner.decode(codes, layer, features) + 1) * 0.8  # [0, 1.6]


class _Loud(_Channels):
  def decode(self, codes, layer, features):
    return self.inner.decode(codes, layer, features) * 1.5  # [-1.5, 1.5]: an unclipped GAN's overshoot


def _explain(gen, codes, **kw):
  return rj.explain(
    gen,
    codes,
    layer="feature",
    players=PLAYERS,
    options=OPTIONS,
    f0=np.zeros(23, np.float32),
    show_progress=False,
    **kw,
  )


def test_missing_protocol_method_is_named(gen):
  class NoDecode:
    layers = ("feature",)

    def sample_codes(self, rng, num, classes=None):
      return {}

    def generate(self, codes):
      return None

    def encode(self, codes, layer):
      return None

  with pytest.raises(ValueError, match="lacks decode"):
    _explain(NoDecode(), {})


def test_channels_first_and_out_of_range_images_are_refused():
  g = _Channels()
  with pytest.raises(ValueError, match="channels-first"):
    _explain(g, g.sample_codes(jax.random.PRNGKey(0), 1))
  b = _Bright()
  with pytest.raises(ValueError, match=r"looks like images in \[0, X\]"):
    _explain(b, b.sample_codes(jax.random.PRNGKey(0), 1))


def test_overshoot_on_both_sides_warns_and_is_explained():
  loud = _Loud()
  with pytest.warns(UserWarning, match=r"beyond \[-1, 1\]"):
    exp = _explain(loud, loud.sample_codes(jax.random.PRNGKey(0), 1))
  assert np.isfinite(exp.norms()).all() and np.abs(exp.norms()).max() > 0


def test_bad_codes_are_refused(gen):
  good = gen.sample_codes(jax.random.PRNGKey(0), 2)
  with pytest.raises(ValueError, match="disagree on the batch"):
    _explain(gen, {"z": good["z"], "label": good["label"][:1]})
  with pytest.raises(ValueError, match="dtype"):
    _explain(gen, {"z": good["z"].astype(jnp.int32), "label": good["label"]})
  nan = good["z"].at[0, 0].set(jnp.nan)
  with pytest.raises(ValueError, match="NaN"):
    _explain(gen, {"z": nan, "label": good["label"]})
  with pytest.raises(ValueError, match="structure"):
    _explain(gen, {"z": good["z"]})


def test_invert_finds_a_code_for_a_generated_image(gen):
  target = np.asarray(gen.generate(gen.sample_codes(jax.random.PRNGKey(5), 1)))[0]
  inv = rj.invert(gen, target, steps=150, restarts=2, learning_rate=0.1)
  assert inv.image.shape == target.shape and inv.history.shape == (150,)
  start = float(
    np.sqrt(np.mean((np.asarray(gen.generate(gen.sample_codes(jax.random.PRNGKey(0), 1)))[0] - target) ** 2))
  )
  assert inv.rmse < 0.5 * start  # much closer than a random code
  assert inv.rmse == pytest.approx(float(np.sqrt(np.mean((inv.image - target) ** 2))), rel=1e-4)
