"""The scenes: real photographs bundled inside the scikit-image wheel (no network), as grayscale and log intensity.

Every name in :data:`PHOTOS` loads from files shipped in ``skimage/data`` (checked offline with
scikit-image 0.26). Files that scikit-image would download on first use (``eagle``, ``lily``, ``kidney``, ...)
are deliberately absent: the simulator must work on a machine without network access. Two bundled photos are
left out because they make poor scenes: ``cell`` (almost no contrast, so hardly any events) and ``clock``
(``clock_motion.png`` is already motion-blurred).

The event camera responds to log intensity. A photo ``I`` in [0, 1] becomes

    L = log(I + eps)

where the offset ``eps`` keeps dark pixels finite (the same role as the photoreceptor's dark current).

>>> img = load_photo("camera")
>>> img.shape, img.dtype, float(img.min()) >= 0.0, float(img.max()) <= 1.0
((512, 512), dtype('float32'), True, True)
>>> load_photo("eagle")
Traceback (most recent call last):
...
ValueError: unknown photo 'eagle'; choose from astronaut, brick, camera, chelsea, coffee, coins, grass, \
gravel, hubble_deep_field, immunohistochemistry, moon, motorcycle_left, page, retina, rocket, text
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return np.asarray(getattr(skimage.data, name)())

    return load


def _motorcycle_left() -> np.ndarray:
    import skimage.data

    left, _right, _disparity = skimage.data.stereo_motorcycle()
    return np.asarray(left)


# name -> loader of the bundled file (uint8 gray or RGB). Registry, not getattr on user input.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "brick": _skimage("brick"),
    "camera": _skimage("camera"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "coins": _skimage("coins"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "moon": _skimage("moon"),
    "motorcycle_left": _motorcycle_left,
    "page": _skimage("page"),
    "retina": _skimage("retina"),
    "rocket": _skimage("rocket"),
    "text": _skimage("text"),
}


# The photos a config draws from by default: all but ``retina``, whose view is often mostly the black surround of
# the fundus, too sparse in events to judge the flow by (it stays available by name).
DEFAULT_PHOTOS: tuple[str, ...] = tuple(name for name in PHOTOS if name != "retina")


def check_photo_name(name: str) -> None:
    """Raise ``ValueError`` naming the valid photos when ``name`` is not one of :data:`PHOTOS`."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")


def load_photo(name: str) -> np.ndarray:
    """The named photo as grayscale float32 intensity in [0, 1], shape ``(H, W)``.

    RGB photos are converted with the ITU-R BT.709 luma weights (``skimage.color.rgb2gray``).
    """
    check_photo_name(name)
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    raw = PHOTOS[name]()
    if raw.ndim == 3:
        gray = rgb2gray(raw[..., :3])
    else:
        gray = img_as_float(raw)
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


def resize_photo(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` (H, W) to ``shape``, float32 in [0, 1]: anti-aliased bilinear when shrinking, bicubic
    when enlarging (sharper than bilinear, which the renderer applies on top).

    The simulator renders the resized photo at about one reference pixel per sensor pixel, so the bilinear
    sampling in :mod:`eventflow.simulate.render` never aliases fine texture into flicker.
    """
    from skimage.transform import resize

    shrink = shape[0] < image.shape[0] or shape[1] < image.shape[1]
    out = resize(image, shape, order=1 if shrink else 3, anti_aliasing=shrink, preserve_range=True, mode="reflect")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def log_intensity(image: np.ndarray, eps: float) -> np.ndarray:
    """``L = log(I + eps)`` for intensity ``I`` in [0, 1] (any shape), float32.

    >>> [round(float(v), 3) for v in log_intensity(np.array([0.0, 1.0]), eps=0.01)]
    [-4.605, 0.01]
    """
    return np.log(np.asarray(image, dtype=np.float64) + eps).astype(np.float32)
