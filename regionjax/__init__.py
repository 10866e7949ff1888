"""regionjax: disentangle a generator's feature into regional OR components.

Method: "Disentangling Regional Primitives for Image Generation" (Chen, Cheng,
Ding, Lin, Zhang; arXiv 2410.04421). See docs/method.md for the conventions.
"""

from regionjax import denoise, metrics, subsets, testing
from regionjax.components import (
  above,
  combine,
  component_norms,
  or_components,
  rank,
  reconstruct_feature,
  regional_pattern,
  regional_patterns,
  top_fraction,
  top_k,
)
from regionjax.generator import Generator, check_layer
from regionjax.patches import cell_scores, patch_masks, select_patches, subset_masks
from regionjax.solver import ChunkResult, SolverOptions, SolverResult, chunk_plan, solve_minimal_features
from regionjax.truncated import SparseComponents, TruncatedResult, solve_truncated
from regionjax.transforms import and_interactions, mobius, or_interactions, or_matching, zeta
from regionjax.wrap import from_flax, from_functions
from regionjax.torch_bridge import TorchBridgeError, from_torch
from regionjax.interactive import show
from regionjax.explanation import Explanation, LoadError, Players, load
from regionjax.explainer import Inversion, baseline, default_options, explain, invert
from regionjax.query import region_query
from regionjax.evaluation import MetricOptions, evaluate
from regionjax.results import ImageMetrics, Metrics
from regionjax import plot

__version__ = "0.1.0"

__all__ = [
  "Explanation",
  "ImageMetrics",
  "Inversion",
  "LoadError",
  "MetricOptions",
  "Metrics",
  "Players",
  "baseline",
  "default_options",
  "evaluate",
  "explain",
  "invert",
  "load",
  "plot",
  "ChunkResult",
  "Generator",
  "SolverResult",
  "above",
  "and_interactions",
  "cell_scores",
  "check_layer",
  "chunk_plan",
  "combine",
  "component_norms",
  "mobius",
  "or_components",
  "or_interactions",
  "or_matching",
  "from_flax",
  "from_functions",
  "from_torch",
  "TorchBridgeError",
  "patch_masks",
  "rank",
  "reconstruct_feature",
  "region_query",
  "regional_pattern",
  "regional_patterns",
  "select_patches",
  "show",
  "solve_minimal_features",
  "SolverOptions",
  "solve_truncated",
  "SparseComponents",
  "TruncatedResult",
  "subset_masks",
  "subsets",
  "testing",
  "metrics",
  "denoise",
  "top_fraction",
  "top_k",
  "zeta",
]
