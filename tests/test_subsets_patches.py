import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import regionjax as rj
from regionjax import subsets


def test_subset_algebra():
  assert subsets.full_set(4) == 15
  np.testing.assert_array_equal([subsets.size(s) for s in range(8)], [0, 1, 1, 2, 1, 2, 2, 3])
  np.testing.assert_array_equal(subsets.subsets_of(0b101), [0, 1, 4, 5])
  np.testing.assert_array_equal(np.nonzero(subsets.meets(0b100, 3))[0], [4, 5, 6, 7])
  np.testing.assert_array_equal(np.nonzero(subsets.contains(0, 2))[0], [1, 3])
  assert subsets.from_indices([0, 3]) == 9 and subsets.to_indices(9) == [0, 3]
  assert subsets.format_subset(9) == "{0,3}"


@given(st.integers(0, 2**12 - 1))
def test_indices_round_trip(s):
  assert subsets.from_indices(subsets.to_indices(s)) == s
  assert len(subsets.subsets_of(s)) == 2 ** subsets.size(s)


@pytest.mark.parametrize("n", [0, -1, 31, 2.5])
def test_bad_player_counts(n):
  with pytest.raises(ValueError, match="n"):
    subsets.check_num_players(n)


@pytest.mark.parametrize("h,w,r,c", [(12, 12, 6, 6), (128, 128, 6, 6), (13, 7, 3, 2), (5, 5, 5, 5), (64, 48, 6, 4)])
def test_patch_masks_partition(h, w, r, c):
  m = rj.patch_masks(h, w, r, c)
  assert m.shape == (r * c, h, w) and m.dtype == bool
  np.testing.assert_array_equal(m.sum(0), 1)  # a partition of the image
  sizes = m.sum((1, 2))
  assert sizes.min() > 0
  # row-major: cell 1 is to the right of cell 0
  ys, xs = np.nonzero(m[1 if c > 1 else 0])
  assert ys.min() == 0


def test_patch_masks_bad_input():
  with pytest.raises(ValueError, match="rows"):
    rj.patch_masks(4, 4, 5, 2)
  with pytest.raises(ValueError, match="width"):
    rj.patch_masks(4, 0, 2, 2)


def test_select_patches():
  scores = np.arange(36.0)
  np.testing.assert_array_equal(rj.select_patches("difference", 3, 36, scores=scores), [33, 34, 35])
  a = rj.select_patches("random", 9, 36, scores=scores, seed=1)
  b = rj.select_patches("random", 9, 36, scores=scores, seed=1)
  np.testing.assert_array_equal(a, b)
  assert len(set(a)) == 9 and a.min() >= 18  # from the top half by difference
  np.testing.assert_array_equal(rj.select_patches("indices", 2, 36, indices=[7, 3]), [7, 3])
  with pytest.raises(ValueError, match="only 4 cells"):
    rj.select_patches("difference", 9, 4, scores=np.zeros(4))
  with pytest.raises(ValueError, match="must lie in"):
    rj.select_patches("indices", 2, 36, indices=[0, 36])
  with pytest.raises(ValueError, match="repeat"):
    rj.select_patches("indices", 2, 36, indices=[1, 1])
  with pytest.raises(ValueError, match="unknown patch selection"):
    rj.select_patches("best", 2, 36, scores=scores)


def test_cell_scores_and_subset_masks():
  masks = rj.patch_masks(4, 4, 2, 2)
  target = np.zeros((4, 4, 3))
  target[:2, 2:] = 1.0
  np.testing.assert_allclose(rj.cell_scores(masks, target, np.zeros_like(target)), [0, 1, 0, 0])
  sm = rj.subset_masks(masks[:2])
  assert sm.shape == (4, 4, 4)
  np.testing.assert_array_equal(sm[3], masks[0] | masks[1])
  assert not sm[0].any()


def test_center_cells_order():
  from regionjax import patches as patches_lib

  order = patches_lib.center_cells(6, 6)
  assert sorted(order[:4].tolist()) == [14, 15, 20, 21]  # the 2×2 block around the centre
  # then the 8 cells at the next distance, ties broken in row-major order
  assert sorted(order[:9].tolist()) == [8, 9, 13, 14, 15, 16, 19, 20, 21]
  assert set(patches_lib.center_cells(3, 3)[:1].tolist()) == {4}
  assert sorted(order.tolist()) == list(range(36))


def test_saliency_prefers_the_object_over_flat_border():
  from regionjax import patches as patches_lib

  cells = patches_lib.patch_masks(36, 36, 6, 6)
  img = np.zeros((36, 36, 3))
  img[:, :6] = 0.9  # a bright but flat left border
  yy, xx = np.mgrid[0:36, 0:36]
  img[((yy - 18) ** 2 + (xx - 18) ** 2) < 60] = 0.7  # a disc in the middle: edges
  img[18, 12:24] = -0.8  # and detail inside it
  scores = patches_lib.saliency_scores(cells, img)
  chosen = patches_lib.select_patches("saliency", 4, 36, scores=scores)
  assert set(chosen.tolist()) <= {14, 15, 20, 21, 8, 9, 13, 16, 19, 22, 26, 27}
  assert not set(chosen.tolist()) & {0, 6, 12, 18, 24, 30}


def test_mask_scores_and_png(tmp_path):
  from PIL import Image
  from regionjax import patches as patches_lib

  cells = patches_lib.patch_masks(12, 12, 3, 3)
  mask = np.zeros((12, 12), bool)
  mask[4:8, 4:12] = True  # cells 4 and 5 fully, nothing else
  path = tmp_path / "m.png"
  Image.fromarray((mask * 255).astype(np.uint8)).save(path)
  loaded = patches_lib.load_mask_image(str(path))
  np.testing.assert_array_equal(loaded, mask)
  scores = patches_lib.mask_scores(cells, loaded)
  assert scores[4] == 1.0 and scores[5] == 1.0 and scores[[0, 1, 2, 3, 6, 7, 8]].max() == 0.0
  np.testing.assert_array_equal(patches_lib.select_patches("mask", 2, 9, scores=scores), [4, 5])
  with pytest.raises(ValueError, match="pixels"):
    patches_lib.mask_scores(cells, np.zeros((5, 5), bool))
  with pytest.raises(ValueError, match="does not exist"):
    patches_lib.load_mask_image(str(tmp_path / "none.png"))
  (tmp_path / "bad.png").write_text("nope")
  with pytest.raises(ValueError, match="not an image"):
    patches_lib.load_mask_image(str(tmp_path / "bad.png"))
