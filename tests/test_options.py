"""One validated SolverOptions; compiled solver functions reused across λ and calls; early stopping."""

import chex
import jax
import ml_collections
import numpy as np
import pytest

import regionjax as rj
from regionjax import solver as solver_lib
from regionjax import testing

SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=200, schedule="cosine", chunk_size=8, steps_per_call=5)


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


def _args(p):
  return p.decode, p.f, p.f0, p.image, p.masks


@pytest.mark.parametrize(
  "bad, word",
  [
    (dict(lam=0.0), "lam"),
    (dict(lam=float("nan")), "lam"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(steps=0), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(steps=True), "steps"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(optimizer="sgdd"), "optimizer"),
    (dict(composition="min"), "composition"),
    (dict(schedule="linear"), "schedule"),
    (dict(stop_tol=0.0), "stop_tol"),
    (dict(stop_tol=1.5), "stop_tol"),
    (dict(steps_per_call=-1), "steps_per_call"),
    (dict(lam_max=100.0, lam_growth=1.0), "lam_growth"),
    (dict(refine_steps=-2), "refine_steps"),
    (dict(memory_budget=0.0), "memory budget"),
    (dict(tau=0.0), "tau"),
  ],
)
def test_options_refuse_bad_values(bad, word):
  with pytest.raises(ValueError, match=word):
    rj.SolverOptions(**{**dict(lam=1.0, learning_rate=0.1, steps=3), **bad})


def test_options_from_config_spell_none_as_none():
  from configs import default

  s = default.get_config().solver
  o = rj.SolverOptions.from_config(s)
  assert o.lam == s.lam and o.steps == s.steps and o.composition == s.composition and o.lam_max == s.lam_max
  assert o.decode_dtype is None and o.memory_budget is None and o.stop_tol is None
  s2 = ml_collections.ConfigDict(s.to_dict())
  s2.decode_dtype, s2.memory_budget_gb = "bfloat16", 2.0
  o2 = rj.SolverOptions.from_config(s2)
  assert o2.decode_dtype == jax.numpy.bfloat16 and o2.memory_budget == 2.0 * 2**30
  s2.decode_dtype = ""
  with pytest.raises(ValueError, match="decode_dtype"):
    rj.SolverOptions.from_config(s2)


def test_options_or_keywords_not_both(planted):
  o = rj.SolverOptions(lam=1.0, learning_rate=0.1, steps=2)
  with pytest.raises(TypeError, match="not both"):
    rj.solve_minimal_features(*_args(planted), o, steps=3)


def test_compiled_step_is_reused_across_lambdas_and_calls(planted, monkeypatch):
  """λ continuation rounds, a second call with a new target of the same shapes
  and a new λ reuse the compiled blocks: one trace per block length (5 and 2)
  and chunk width (1 for N, 8 for the rest), 4 in all, however many λ rounds."""
  chex.clear_trace_counter()
  monkeypatch.setattr(
    solver_lib,
    "_steps_jit",
    jax.jit(chex.assert_max_traces(solver_lib.run_steps, n=4), static_argnames=("length", "unroll")),
  )
  kw = dict(lam=5.0, learning_rate=0.05, steps=7, steps_per_call=5, chunk_size=8, tau=1e-4, lam_max=320.0)
  res = rj.solve_minimal_features(*_args(planted), **kw)
  assert np.nanmax(np.asarray(res.lam)) >= 5.0 * 4**2  # continuation ran at least two more λ
  decode, f, f0, image, masks = _args(planted)
  rj.solve_minimal_features(decode, f * 0.9, f0, image * 0.9, masks, **{**kw, "lam": 7.0})


def test_same_components_with_early_stopping(planted):
  """Subsets whose objective stopped moving leave the batch; the components
  match running every subset to the end, to the tolerance, with fewer steps."""
  full = rj.solve_minimal_features(*_args(planted), **SETTINGS)
  early = rj.solve_minimal_features(*_args(planted), **SETTINGS, stop_tol=1e-4)
  run = early.steps_run[1:]
  assert run.min() >= 5 and run.max() <= SETTINGS["steps"]
  assert run.mean() < 0.9 * SETTINGS["steps"], run  # work saved
  np.testing.assert_array_equal(full.steps_run[1:], SETTINGS["steps"])
  c_full = np.asarray(rj.or_components(full.u))
  c_early = np.asarray(rj.or_components(early.u))
  assert np.isfinite(c_early).all()
  np.testing.assert_allclose(c_early, c_full, atol=0.05)
  np.testing.assert_allclose(np.asarray(early.error), np.asarray(full.error), atol=0.01)


def test_pool_without_stopping_is_the_plain_solve(planted):
  """The pool with a tolerance no subset reaches runs every step: the same α as chunked solving."""
  kw = dict(SETTINGS, steps=40, chunk_size=5)
  plain = rj.solve_minimal_features(*_args(planted), **kw)
  pooled = rj.solve_minimal_features(*_args(planted), **kw, stop_tol=1e-12)
  np.testing.assert_array_equal(pooled.steps_run[1:], 40)
  np.testing.assert_allclose(np.asarray(pooled.alpha), np.asarray(plain.alpha), atol=1e-5)
  np.testing.assert_allclose(np.asarray(pooled.history), np.asarray(plain.history), rtol=1e-5)


def test_pool_reports_each_chunk_once_when_whole(planted):
  seen = []
  setup = solver_lib.prepare(*_args(planted), **dict(SETTINGS, chunk_size=4), stop_tol=1e-3)
  out = solver_lib.solve_chunks(setup, range(setup.num_chunks), on_chunk=lambda i, t, c: seen.append(i))
  assert sorted(seen) == list(range(setup.num_chunks)) and len(seen) == len(set(seen))
  for i, chunk in out.items():
    np.testing.assert_array_equal(chunk.subsets, setup.plan[i])
