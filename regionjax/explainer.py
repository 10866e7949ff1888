"""The library's front door: ``rj.explain(generator, codes, layer=…, players=…) → rj.Explanation``.

One call does what a ``main.py`` run does before its metrics and report:

1. checks the generator and the codes at the boundary (:func:`check_generator`,
   :func:`check_codes`: one clear ``ValueError`` naming what is wrong);
2. the baseline ``f0``: the mean feature at ``layer`` over many codes (v1 §4),
   unless given (:func:`baseline`);
3. per image: the target ``x = g(f)``, its feature ``f`` and a decoder with the
   image's codes bound (:func:`prepare_target`);
4. the minimal features ``u(S) = f0 + α_S ⊙ (f − f0)`` by the batched solver
   (v2 eq. 5; :func:`regionjax.solve_minimal_features`), optionally
   checkpointed by chunk and bound to the image's fingerprint;
5. an :class:`regionjax.Explanation` holding what determines the result.

:func:`invert` finds a code for a real image, so that real images can be explained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from regionjax import distributed
from regionjax import explanation as explanation_lib
from regionjax import patches as patches_lib
from regionjax import progress
from regionjax import solver as solver_lib
from regionjax.generator import check_layer

#: How far outside the protocol's [-1, 1] an image may reach (rounding, a tanh-free output layer) before it is
#: refused: τ and every RMSE assume that range.
IMAGE_RANGE_TOLERANCE = 0.05
PROTOCOL_METHODS = ("sample_codes", "generate", "encode", "decode")


def default_options() -> solver_lib.SolverOptions:
  """The face model's defaults (configs/default.py): ``u(N)`` and the singletons solved by projected Adam
  (200 steps, cosine rate from 0.01, λ = 200, λ continuation up to 3200 for subsets missing τ = 0.1), every
  other subset composed by ``α_S = max_{i∈S} α_i``."""
  return solver_lib.SolverOptions(
    lam=200.0,
    learning_rate=0.01,
    steps=200,
    tau=0.1,
    chunk_size=16,
    schedule="cosine",
    optimizer="adam",
    composition="max",
    lam_max=3200.0,
  )


# ------------------------------------------------------------ boundary checks
def check_generator(generator) -> None:
  """Raises ValueError naming each protocol member the generator lacks (docs/adding_a_generator.md)."""
  missing = [m for m in PROTOCOL_METHODS if not callable(getattr(generator, m, None))]
  layers = getattr(generator, "layers", None)
  if layers is None or isinstance(layers, str) or not len(list(layers)):
    missing.insert(0, "layers")
  if missing:
    raise ValueError(
      f"the generator ({type(generator).__name__}) lacks {', '.join(missing)} of the generator protocol "
      f"(layers, sample_codes, generate, encode, decode); wrap your model with rj.from_flax or rj.from_functions"
    )


def _leaf_name(path) -> str:
  return jax.tree_util.keystr(path) or "codes"


def check_codes(codes, reference=None) -> int:
  """The batch size of ``codes``; ValueError if their leaves disagree on the leading (image) axis, hold NaN or
  Inf, or differ in structure or dtype kind from ``reference`` (the generator's own sampled codes)."""
  leaves = jax.tree_util.tree_flatten_with_path(codes)[0]
  if not leaves:
    raise ValueError("codes hold no arrays")
  sizes = {}
  for path, leaf in leaves:
    a = np.asarray(leaf)
    if a.dtype == object:
      raise ValueError(f"code leaf {_leaf_name(path)} is a {type(leaf).__name__}, not an array or a number")
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
      raise ValueError(f"code leaf {_leaf_name(path)} holds {int((~np.isfinite(a)).sum())} NaN or Inf values")
    if a.ndim:
      sizes[_leaf_name(path)] = a.shape[0]
  if len(set(sizes.values())) > 1:
    raise ValueError(
      f"code leaves disagree on the batch (image) axis: {sizes}; every array leaf needs the same leading axis"
    )
  if not sizes:
    raise ValueError("codes have no leaf with a leading batch axis; one image is a batch of one")
  if reference is not None:
    ref = jax.tree_util.tree_flatten_with_path(reference)
    got_def, ref_def = jax.tree.structure(codes), ref[1]
    if got_def != ref_def:
      raise ValueError(f"codes have the structure {got_def}, but the generator samples {ref_def}")
    for (path, leaf), (_, want) in zip(leaves, ref[0]):
      a, w = np.asarray(leaf), np.asarray(want)
      kind = lambda k: "f" if k in "fc" else ("i" if k in "iub" else k)  # noqa: E731
      if kind(a.dtype.kind) != kind(w.dtype.kind):
        raise ValueError(
          f"code leaf {_leaf_name(path)} has dtype {a.dtype}, but the generator's codes have {w.dtype}; "
          f"cast it (e.g. .astype({w.dtype.name!r}))"
        )
      if a.ndim != w.ndim or a.shape[1:] != w.shape[1:]:
        raise ValueError(
          f"code leaf {_leaf_name(path)} has shape {a.shape}, but the generator's codes have (B,){w.shape[1:]}"
        )
  return next(iter(sizes.values()))


def check_images(images, what: str = "the generator's images") -> None:
  """ValueError for images that are not ``(B, H, W, C)`` channels-last in ``[-1, 1]`` (± the tolerance)."""
  x = np.asarray(images)
  if x.ndim != 4:
    raise ValueError(f"{what} have shape {x.shape}; the protocol wants (B, H, W, 3)")
  if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
    raise ValueError(
      f"{what} have shape {x.shape}, which looks channels-first (B, C, H, W); the protocol wants channels-last "
      f"(B, H, W, C): transpose with x.transpose(0, 2, 3, 1) in generate and decode"
    )
  if not np.isfinite(x).all():
    raise ValueError(f"{what} hold {int((~np.isfinite(x)).sum())} NaN or Inf values; check the weights and codes")
  lo, hi = float(x.min()), float(x.max())
  tol = IMAGE_RANGE_TOLERANCE
  if lo >= -tol and hi > 1 + tol:
    # A [0, 1]- or [0, 255]-style image: another convention, not an overshoot. τ and every RMSE assume [-1, 1].
    raise ValueError(
      f"{what} range over [{lo:.3g}, {hi:.3g}], which looks like images in [0, X]; the protocol wants [-1, 1] "
      f"(tolerance {tol}): rescale them (e.g. 2·x − 1 for images in [0, 1]) — τ and every RMSE assume that range"
    )
  if lo < -1 - tol or hi > 1 + tol:
    # Unclipped GAN outputs overshoot [-1, 1] on both sides (real StyleGAN2 and SiD checkpoints do); they are
    # explained as they are, and the user is told that τ is relative to [-1, 1].
    warnings.warn(
      f"{what} range over [{lo:.3g}, {hi:.3g}], beyond [-1, 1] (tolerance {tol}); they are explained unclipped, "
      f"and τ and every RMSE are read against the range [-1, 1]",
      stacklevel=2,
    )


def check_finite(name: str, x) -> None:
  x = np.asarray(x)
  if not np.isfinite(x).all():
    raise ValueError(
      f"the generator returned NaN or Inf in {name} ({int((~np.isfinite(x)).sum())} values); "
      f"check the checkpoint and model.truncation"
    )


# ------------------------------------------------------------------ baseline
def slice_codes(codes, start: int, stop: int):
  """Images ``start:stop`` of a codes batch (scalar leaves are shared)."""
  return jax.tree.map(lambda a: a[start:stop] if getattr(a, "ndim", 0) > 0 else a, codes)


def baseline(
  generator,
  layer: str,
  *,
  num_codes: int = 1000,
  batch_size: int = 250,
  seed: int = 1,
  show_progress: bool = True,
) -> np.ndarray:
  """``f0``: the mean feature at ``layer`` over ``num_codes`` random codes (v1 §4), classes spread evenly over
  all classes when the model has classes. Accumulated in float64 batch by batch."""
  if num_codes < 1 or batch_size < 1:
    raise ValueError(f"num_codes and batch_size must be ≥ 1, got {num_codes} and {batch_size}")
  rng = jax.random.PRNGKey(seed)
  num_classes = getattr(generator, "num_classes", None)
  total = None
  bar = progress.bar(total=num_codes, desc="baseline f0", unit="code", disable=not show_progress)
  for start in range(0, num_codes, batch_size):
    k = min(batch_size, num_codes - start)
    classes = None if not num_classes else (np.arange(start, start + k) % num_classes)
    codes = generator.sample_codes(jax.random.fold_in(rng, start), k, classes=classes)
    feat = np.asarray(generator.encode(codes, layer), np.float64)
    check_finite("the baseline features", feat)
    total = feat.sum(0) if total is None else total + feat.sum(0)
    bar.update(k)
  bar.close()
  return (total / num_codes).astype(np.float32)


# ------------------------------------------------------------ one image's target
@dataclasses.dataclass
class Target:
  """One target image ``x = g(f)`` and what the solver needs of it."""

  index: int
  class_id: Any
  image: np.ndarray  # (H, W, C)
  baseline_image: np.ndarray  # g(f0) with this image's codes
  f: np.ndarray
  decode: Callable  # one feature -> one image, for this image's codes
  codes: Any = None  # this image's codes, a batch of one


def _static_leaf(leaf):
  """A code leaf that stays a constant of the compiled decoder (hashable), or None for an array leaf."""
  if isinstance(leaf, (np.ndarray, jax.Array, np.generic)) and np.size(leaf) > 1:
    return None
  a = np.asarray(leaf)
  if a.dtype == object:
    raise TypeError(f"code leaf of type {type(leaf).__name__}")
  return (a.shape, a.dtype.str, a.item())


@functools.lru_cache(maxsize=16)
def _bound_decoder(gen, layer: str, treedef, static: tuple) -> Callable:
  """``(arrays, v) → g(v)`` for codes of this structure whose small leaves (``static``) are fixed."""

  def decode(arrays, v):
    it = iter(arrays)
    leaves = [next(it) if s is None else np.asarray(s[2], np.dtype(s[1])).reshape(s[0]) for s in static]
    return gen.decode(jax.tree.unflatten(treedef, leaves), layer, v[None])[0]

  return decode


def codes_decoder(gen, layer: str, codes1, f) -> Callable:
  """One feature -> one image with this image's codes: ``v ↦ g(v; codes)``.

  Where the generator allows, a ``jax.tree_util.Partial`` whose bound
  arguments are the codes' arrays (the solver's compiled chunk then serves
  every image of a batch: only the arrays change); leaves of one element
  (a truncation, a temperature, a noise mode) are fixed in the function,
  which is shared by images with the same ones. Generators that need their
  codes as concrete values get a plain closure (one compilation per image).
  """
  try:
    leaves, treedef = jax.tree.flatten(codes1)
    static = tuple(_static_leaf(x) for x in leaves)
    fn = _bound_decoder(gen, layer, treedef, static)
    arrays = [jnp.asarray(x) for x, s in zip(leaves, static) if s is None]
    jax.eval_shape(
      fn, arrays, jax.ShapeDtypeStruct(np.shape(f), np.asarray(f).dtype)
    )  # traceable with codes as arguments?
    return jax.tree_util.Partial(fn, arrays)
  except Exception:  # noqa: BLE001 - any failure: the closure, as before
    pass

  def decode(v):
    return gen.decode(codes1, layer, v[None])[0]

  return decode


def class_of(gen, codes1):
  """The class of a one-code batch (``None`` for an unconditional model)."""
  fn = getattr(gen, "class_of", None)
  ids = fn(codes1) if callable(fn) else None
  return None if ids is None else int(np.asarray(ids).reshape(-1)[0])


def prepare_target(gen, codes, index: int, layer: str, f0: np.ndarray) -> Target:
  """Image, feature and decoder of the ``index``-th code; g(f0) for its codes."""
  codes1 = slice_codes(codes, index, index + 1)
  image = np.asarray(gen.generate(codes1))
  check_images(image, "the generator's image")
  f = np.asarray(gen.encode(codes1, layer))[0]
  check_finite("the target feature", f)
  if f.shape != np.shape(f0):
    raise ValueError(f"the feature at {layer!r} has shape {f.shape} but f0 has shape {np.shape(f0)}")
  decode = codes_decoder(gen, layer, codes1, f)
  baseline_image = np.asarray(jax.jit(decode)(jnp.asarray(f0)))
  check_finite("the baseline image g(f0)", baseline_image)
  return Target(
    index=index,
    class_id=class_of(gen, codes1),
    image=image[0],
    baseline_image=baseline_image,
    f=f,
    decode=decode,
    codes=codes1,
  )


# ------------------------------------------------------------------ solving
def explain_target(
  target: Target,
  f0: np.ndarray,
  players: explanation_lib.Players,
  options: solver_lib.SolverOptions,
  *,
  layer: str,
  model: str = "",
  generator_fingerprint: str = "",
  mesh=None,
  store=None,
  critical: Callable[[], Any] | None = None,
  show_progress: bool = True,
) -> explanation_lib.Explanation:
  """The :class:`regionjax.Explanation` of one prepared target (a batch of one).

  ``store``: a :class:`regionjax.io.ChunkStore` whose finished chunks are
  reused when they were made for this image's fingerprint (else set aside and
  recomputed) and to which new chunks are saved, each inside ``critical()``
  (the pipeline holds SIGTERM there until the checkpoint is complete).
  """
  masks = np.asarray(players.masks, bool)
  fp = explanation_lib.solve_fingerprint(
    layer=layer, f=target.f, f0=f0, image=target.image, masks=masks, options=options, model=model
  )
  done = {}
  if store is not None:
    store.bind(fp)
    done = store.load_all()
  n = masks.shape[0]
  total = n + 1 if options.composition == "max" and n > 1 else (1 << n) - 1  # problems optimised
  bar = progress.bar(total=total, desc=f"solve image {target.index}", unit="problem", disable=not show_progress)
  bar.update(sum(c.subsets.size for c in done.values()))
  critical = critical or contextlib.nullcontext

  def on_chunk(i, num, chunk):
    if store is not None:
      with critical():  # a SIGTERM/SIGINT now waits for the checkpoint to be complete
        store.save(i, chunk)
    bar.update(chunk.subsets.size)
    bar.set_postfix(chunk=f"{i + 1}/{num}", err=f"{float(np.max(chunk.error)):.3g}")

  t0 = time.time()
  solution = distributed.solve_minimal_features(
    target.decode, target.f, f0, target.image, masks, options, mesh=mesh, done=done, on_chunk=on_chunk
  )
  bar.close()
  return from_solution(
    solution,
    target,
    f0,
    players,
    options,
    layer=layer,
    model=model,
    fingerprint=fp,
    generator_fingerprint=generator_fingerprint,
    seconds=time.time() - t0,
  )


def from_solution(
  solution: solver_lib.SolverResult,
  target: Target,
  f0,
  players: explanation_lib.Players,
  options: solver_lib.SolverOptions,
  *,
  layer: str,
  model: str = "",
  fingerprint: str = "",
  generator_fingerprint: str = "",
  seconds: float = 0.0,
) -> explanation_lib.Explanation:
  """An explanation (a batch of one) from a solver result: only the α of the solved subsets are kept."""
  n = int(np.shape(players.masks)[0])
  size = 1 << n
  if options.composition == "max" and n > 1:
    stored = np.array([size - 1] + [1 << i for i in range(n)], np.int64)
  else:
    stored = np.arange(1, size, dtype=np.int64)
  alpha = np.asarray(solution.alpha)[stored]
  history = np.asarray(solution.history)[stored]
  lam = np.nan_to_num(np.asarray(solution.lam, np.float64)[stored], nan=float(options.lam))
  info = explanation_lib.Info(
    layer=layer,
    model=model,
    composition=options.composition,
    alpha_subsets=tuple(int(s) for s in stored),
    options=explanation_lib.frozen(explanation_lib.options_to_json(options)),
    players=explanation_lib.frozen(players.to_json()),
    indices=(int(target.index),),
    class_ids=(target.class_id,),
    fingerprints=(fingerprint,),
    generator=generator_fingerprint,
    seconds=(float(seconds),),
    versions=explanation_lib.frozen(explanation_lib.versions()),
  )
  return explanation_lib.Explanation(
    f=np.asarray(target.f)[None],
    f0=np.asarray(f0),
    image=np.asarray(target.image)[None],
    baseline_image=np.asarray(target.baseline_image)[None],
    alpha=alpha[None],
    error=np.asarray(solution.error, np.float32)[None],
    history=history[None].astype(np.float32),
    lam=lam[None],
    masks=np.asarray(players.masks, bool),
    codes=target.codes if target.codes is not None else {},
    info=info,
  )


def explain(
  generator,
  codes,
  *,
  layer: str,
  players,
  options: solver_lib.SolverOptions | None = None,
  f0=None,
  baseline_codes: int = 1000,
  baseline_seed: int = 1,
  model: str | None = None,
  mesh=None,
  show_progress: bool = True,
) -> explanation_lib.Explanation:
  """Explains the images of ``codes`` at ``layer`` by OR components of the players' reconstruction demands.

  Args:
    generator: anything with the generator protocol (``layers``, ``sample_codes``, ``generate``, ``encode``,
      ``decode``; :func:`regionjax.from_flax`, :func:`regionjax.from_functions`, a port).
    codes: the generator's code pytree with a leading batch axis (one image = a batch of one; class labels
      where the model has them), e.g. ``generator.sample_codes(jax.random.PRNGKey(0), 4)`` or
      ``rj.invert(generator, image).codes``.
    layer: the tap whose feature is split (one of ``generator.layers``).
    players: a :class:`regionjax.Players` (``Players.center(6, 6, 9)``, ``Players.grid_cells(rows, cols,
      cells)``, ``Players.from_masks(masks, names)``), boolean ``(n, H, W)`` masks, or a dict of
      ``rows``, ``cols``, ``cells``.
    options: a :class:`regionjax.SolverOptions`; default :func:`default_options` (the face model's).
    f0: the baseline feature; default: the mean feature over ``baseline_codes`` codes drawn with
      ``baseline_seed`` (:func:`baseline`).
    model: a name for the generator stored with the result (default: its class name).
    mesh: a ``jax.sharding.Mesh`` of local devices to shard each chunk's subsets over.
    show_progress: progress bars on stderr.

  Returns:
    An :class:`regionjax.Explanation` of all images (``len(exp) == batch size``).

  Raises:
    ValueError: one line naming what is wrong with the generator, codes, layer, players or options.
  """
  check_generator(generator)
  layer = check_layer(generator, layer)
  options = default_options() if options is None else options
  if not isinstance(options, solver_lib.SolverOptions):
    raise TypeError(f"options must be a regionjax.SolverOptions, got {type(options).__name__}")
  classes = None
  ids = getattr(generator, "class_of", None)
  if getattr(generator, "num_classes", None) and callable(ids):
    classes = np.zeros(1, np.int32)
  reference = generator.sample_codes(jax.random.PRNGKey(0), 1, classes=classes)
  num = check_codes(codes, reference)
  players = explanation_lib.as_players(players)
  if f0 is None:
    f0 = baseline(generator, layer, num_codes=baseline_codes, seed=baseline_seed, show_progress=show_progress)
  f0 = np.asarray(f0, np.float32)
  check_finite("f0", f0)
  model = model or type(generator).__name__
  gfp = explanation_lib.generator_fingerprint(generator, layer)
  out = []
  for i in range(num):
    target = prepare_target(generator, codes, i, layer, f0)
    resolved = players.resolve(*target.image.shape[:2])
    out.append(
      explain_target(
        target,
        f0,
        resolved,
        options,
        layer=layer,
        model=model,
        generator_fingerprint=gfp,
        mesh=mesh,
        show_progress=show_progress,
      )
    )
  return explanation_lib.concatenate(out) if len(out) > 1 else out[0]


# ------------------------------------------------------------------ real images
@dataclasses.dataclass(frozen=True)
class Inversion:
  """A code that regenerates a real image (:func:`invert`).

  Attributes:
    codes: the code pytree, a batch of one (pass it to :func:`explain`).
    image: ``g(codes)``, ``(H, W, C)``.
    rmse: root-mean-square error of ``image`` against the real image (in [-1, 1] units).
    history: the loss (mean squared error) of the best restart at each step.
  """

  codes: Any
  image: np.ndarray
  rmse: float
  history: np.ndarray


def invert(
  generator,
  image,
  *,
  steps: int = 300,
  restarts: int = 4,
  learning_rate: float = 0.05,
  seed: int = 0,
  class_id: int | None = None,
) -> Inversion:
  """Finds a code whose image matches ``image`` (``(H, W, C)`` in [-1, 1]) by gradient descent on the code.

  The floating-point array leaves of the generator's codes are optimised with
  Adam to minimise ``mean((g(z) − x)²)`` from ``restarts`` random starts (each
  ``generator.sample_codes``); scalar leaves (a truncation, a temperature) and
  integer leaves stay fixed. The restart with the lowest final error wins; its
  RMSE is reported, so a poor inversion is visible before it is explained.
  """
  import optax

  check_generator(generator)
  x = np.asarray(image, np.float32)
  check_images(x[None], "the image to invert")
  if steps < 1 or restarts < 1:
    raise ValueError(f"steps and restarts must be ≥ 1, got {steps} and {restarts}")
  classes = None if class_id is None else np.full(restarts, int(class_id))
  start = generator.sample_codes(jax.random.PRNGKey(seed), restarts, classes=classes)
  shape = np.asarray(generator.generate(slice_codes(start, 0, 1))).shape[1:]
  if shape != x.shape:
    raise ValueError(f"the image is {x.shape} but the generator makes {shape}")
  leaves, treedef = jax.tree.flatten(start)
  free = [isinstance(a, (np.ndarray, jax.Array)) and np.ndim(a) > 0 and np.asarray(a).dtype.kind == "f" for a in leaves]
  if not any(free):
    raise ValueError("the generator's codes have no floating-point array to optimise")
  params = [jnp.asarray(a) for a, ok in zip(leaves, free) if ok]
  fixed = [a for a, ok in zip(leaves, free) if not ok]

  def codes_of(p):
    it, jt = iter(p), iter(fixed)
    return jax.tree.unflatten(treedef, [next(it) if ok else next(jt) for ok in free])

  target = jnp.asarray(x)

  def losses(p):
    img = generator.generate(codes_of(p))
    return jnp.mean((img - target[None]) ** 2, axis=tuple(range(1, img.ndim)))

  opt = optax.adam(learning_rate)

  @jax.jit
  def step(p, state):
    (_, per), grads = jax.value_and_grad(lambda q: (losses(q).sum(), losses(q)), has_aux=True)(p)
    updates, state = opt.update(grads, state, p)
    return optax.apply_updates(p, updates), state, per.min()

  state = opt.init(params)
  history = []
  bar = progress.bar(total=steps, desc="invert", unit="step")
  for _ in range(steps):
    params, state, best_loss = step(params, state)
    history.append(float(best_loss))
    bar.update(1)
  bar.close()
  final = np.asarray(jax.jit(losses)(params))
  best = int(np.argmin(final))
  codes = slice_codes(codes_of(params), best, best + 1)
  img = np.asarray(generator.generate(codes))[0]
  history = np.asarray(history, np.float32)
  return Inversion(codes=codes, image=img, rmse=float(math.sqrt(final[best])), history=history)


# ------------------------------------------------------------ bound to a generator
@dataclasses.dataclass
class ImageResult:
  """One image of an explanation with its decoder: what the metrics, figures and views read (host arrays)."""

  index: int
  class_id: Any
  image: np.ndarray
  baseline_image: np.ndarray
  f: np.ndarray
  f0: np.ndarray
  cells: np.ndarray  # (rows*cols, H, W) grid masks (the players' masks without a grid)
  players: np.ndarray  # (n,) chosen cell indices (0 … n−1 without a grid)
  masks: np.ndarray  # (n, H, W)
  solution: solver_lib.SolverResult
  components: np.ndarray  # (2**n, *feature_shape)
  decode: Callable
  seconds: float
  names: list | None = None  # a name per player, else None
  options: solver_lib.SolverOptions | None = None
  explanation: explanation_lib.Explanation | None = None  # this image's explanation (a batch of one)


def bind(exp: explanation_lib.Explanation, i: int, generator=None, *, decode: Callable | None = None) -> ImageResult:
  """Image ``i`` of ``exp`` with its decoder ``v ↦ g(v; codes_i)`` (from ``generator``, or ``decode`` given)."""
  e = exp[i]
  if decode is None:
    if generator is None:
      raise ValueError("bind needs the generator (or a decode function) to decode image features")
    check_generator(generator)
    decode = codes_decoder(generator, e.info.layer, e.codes, np.asarray(e.f)[0])
  players = e.players
  masks = np.asarray(e.masks, bool)
  if players.grid is not None and players.cells is not None:
    cells = patches_lib.patch_masks(masks.shape[1], masks.shape[2], *players.grid)
    cell_ids = np.asarray(players.cells, np.int64)
  else:
    cells, cell_ids = masks, np.arange(e.n)
  return ImageResult(
    index=int(e.info.indices[0]),
    class_id=e.info.class_ids[0],
    image=np.asarray(e.image)[0],
    baseline_image=np.asarray(e.baseline_image)[0],
    f=np.asarray(e.f)[0],
    f0=np.asarray(e.f0),
    cells=np.asarray(cells, bool),
    players=cell_ids,
    masks=masks,
    solution=e.solver_result(0),
    components=np.asarray(e.components()[0]),
    decode=decode,
    seconds=float(e.info.seconds[0]) if e.info.seconds else 0.0,
    names=list(players.names) if players.names else None,
    options=e.options,
    explanation=e,
  )
