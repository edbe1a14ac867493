"""Faster, bit-identical replacements for Meta-World v3's Python hot spots.

A Meta-World v3 step costs 0.4-1 ms, and most of it is Python around MuJoCo rather than
physics. A cProfile of pick-place-v3 put 23% of the time in ``touching_object`` (two list
comprehensions over every ``data.contact`` struct, each built on the fly), 19% in
``scipy.spatial.transform.Rotation.from_matrix(...).as_quat()`` (input validation, a
determinant, a Gramian ``isclose`` and object construction for one 3x3 matrix), and 35%
(inclusive) in ``_get_obs`` (named ``data.body(...)`` look-ups, ``np.split``/``np.hstack``).

:func:`install` replaces those on *one env instance* (instance attributes shadow the class's
methods). Nothing in the installed ``metaworld`` package, in scipy, or in any class is
modified, so envs built by anyone else, and metarl's envs built with ``fast=False``, run
the stock code.

Every replacement computes the same IEEE double operations in the same order as the code
it replaces, so observations, rewards and every ``info`` value are bitwise equal to stock
Meta-World 3.1.1 (``tests/test_envs_metaworld_fast.py`` checks full episodes):

* :func:`quat_from_matrix` is scipy's algorithm for ``Rotation.from_matrix(m).as_quat()``
  (scipy 1.17, Cython backend ``_from_matrix_orthogonal``): branch on the largest of the
  diagonal and the trace (first maximum wins), the same sums, then division by
  ``sqrt(((x*x + y*y) + z*z) + w*w)``; ``as_quat()`` without ``canonical`` keeps the sign.
  scipy first checks the determinant and orthogonality (Gramian within 1e-12 of the
  identity) and orthogonalises by SVD otherwise; we take the fast branch only when the
  matrix is clearly orthogonal and right-handed (Gramian within 5e-13, positive
  determinant), and hand anything else to scipy itself, so the edge cases are scipy's.
* ``_get_quat_objects`` is each class's own method, rebuilt with ``Rotation`` bound to
  :class:`_FastRotation` in its globals (a copy: the module's globals are untouched); so a
  class's own logic (several objects, zero padding) is kept verbatim. The reward methods
  (``compute_reward``, ``_gripper_caging_reward``, ...) are rebuilt the same way with
  ``reward_utils.tolerance`` replaced by :func:`_fast_tolerance`, which drops the 0-d array
  round trips but computes the sigmoid with stock ``_sigmoids`` on the same ``np.float64``.
* ``touching_object`` selects the contacts through MuJoCo's ``data.contact.geom`` array
  instead of Python loops over contact structs, then sums their ``efc_force`` in contact
  order with Python's ``sum`` starting at ``0``, as stock does.
* ``_get_curr_obs_combined_no_goal`` and ``_get_obs`` index ``data.xpos`` by cached body
  ids and fill a preallocated array instead of ``np.split``/``np.hstack``; the values are
  copies of the same numbers; the gripper opening is ``np.linalg.norm``'s own formula for a
  1-D array (``sqrt(x.dot(x))``) and ``np.clip``'s for a scalar.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any

import numpy as np
import numpy.typing as npt

#: Orthogonality margin: scipy refuses the fast branch beyond 1e-12; ours is half that, so a
#: matrix near scipy's threshold (where two roundings of the Gramian could disagree) goes to scipy.
_ORTHO_TOL = 5e-13


def _scipy_quat(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(matrix).as_quat()


def quat_from_matrix(matrix: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``scipy.spatial.transform.Rotation.from_matrix(matrix).as_quat()`` for one 3x3 matrix, bitwise.

    Returns a float64 array ``[x, y, z, w]`` (scalar last, sign not canonicalised), as scipy does.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (3, 3):
        return _scipy_quat(m)
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m.tolist()
    # scipy's validity checks, decided with a margin; anything doubtful is scipy's to handle
    det = m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20)
    g00 = m00 * m00 + m01 * m01 + m02 * m02
    g11 = m10 * m10 + m11 * m11 + m12 * m12
    g22 = m20 * m20 + m21 * m21 + m22 * m22
    g01 = m00 * m10 + m01 * m11 + m02 * m12
    g02 = m00 * m20 + m01 * m21 + m02 * m22
    g12 = m10 * m20 + m11 * m21 + m12 * m22
    if not (det > 0.5 and abs(g00 - 1.0) < _ORTHO_TOL and abs(g11 - 1.0) < _ORTHO_TOL
            and abs(g22 - 1.0) < _ORTHO_TOL and abs(g01) < _ORTHO_TOL and abs(g02) < _ORTHO_TOL
            and abs(g12) < _ORTHO_TOL):
        return _scipy_quat(m)  # also raises scipy's errors for singular / left-handed input
    # scipy _rotation_cy._from_matrix_orthogonal, operation for operation
    trace = m00 + m11 + m22
    choice, vmax = 0, m00
    if m11 > vmax:
        choice, vmax = 1, m11
    if m22 > vmax:
        choice, vmax = 2, m22
    if trace > vmax:
        choice = 3
    if choice == 0:  # i, j, k = 0, 1, 2
        x = 1 - trace + 2 * m00
        y = m10 + m01
        z = m20 + m02
        w = m21 - m12
    elif choice == 1:  # i, j, k = 1, 2, 0
        y = 1 - trace + 2 * m11
        z = m21 + m12
        x = m01 + m10
        w = m02 - m20
    elif choice == 2:  # i, j, k = 2, 0, 1
        z = 1 - trace + 2 * m22
        x = m02 + m20
        y = m12 + m21
        w = m10 - m01
    else:
        x = m21 - m12
        y = m02 - m20
        z = m10 - m01
        w = 1 + trace
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    return np.array([x / norm, y / norm, z / norm, w / norm])


class _Quat:
    """What ``_FastRotation.from_matrix`` returns: enough of a ``Rotation`` for ``.as_quat()``."""

    __slots__ = ("_matrix",)

    def __init__(self, matrix: npt.ArrayLike) -> None:
        self._matrix = matrix

    def as_quat(self, canonical: bool = False, *, scalar_first: bool = False) -> npt.NDArray[np.float64]:
        if canonical or scalar_first:
            from scipy.spatial.transform import Rotation

            return Rotation.from_matrix(self._matrix).as_quat(canonical=canonical, scalar_first=scalar_first)
        return quat_from_matrix(self._matrix)


class _FastRotation:
    """Stands in for ``scipy.spatial.transform.Rotation`` inside a copied ``_get_quat_objects``."""

    @staticmethod
    def from_matrix(matrix: npt.ArrayLike) -> _Quat:
        return _Quat(matrix)


def _with_globals(func: types.FunctionType, replacements: dict[str, Any]) -> types.FunctionType:
    """A copy of ``func`` whose globals are a copy of its module's with ``replacements`` applied.

    The module, its globals and the class keep the original objects; only the copy sees the fast ones.
    """
    env_globals = dict(func.__globals__)
    env_globals.update(replacements)
    return types.FunctionType(func.__code__, env_globals, func.__name__, func.__defaults__, func.__closure__)


def _names_in(code: types.CodeType) -> set[str]:
    """Global names a function's code (nested functions included) may look up."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


_PLAIN = (float, int, np.float64)


def _fast_tolerance(x: Any, bounds: tuple[float, float] = (0.0, 0.0), margin: Any = 0.0,
                    sigmoid: str = "gaussian", value_at_margin: float = 0.1) -> Any:
    """``metaworld.utils.reward_utils.tolerance`` for a scalar ``x``, without the 0-d array round trips.

    Stock builds ``np.logical_and``/``np.where`` 0-d arrays and calls ``.item()``; for a Python or
    numpy float the branches below take the same decisions, compute the sigmoid's argument ``d``
    as the same ``np.float64`` and pass it to stock ``_sigmoids`` itself, so the result is the same
    float. Anything else (arrays, other dtypes, invalid bounds or margin) goes to stock ``tolerance``.
    """
    from metaworld.utils import reward_utils

    lower, upper = bounds
    if (type(x) not in _PLAIN or type(lower) not in _PLAIN or type(upper) not in _PLAIN
            or type(margin) not in _PLAIN or lower > upper or margin < 0):
        return reward_utils.tolerance(x, bounds=bounds, margin=margin, sigmoid=sigmoid,
                                      value_at_margin=value_at_margin)
    in_bounds = lower <= x and x <= upper
    if margin == 0:
        return 1.0 if in_bounds else 0.0
    d = np.float64(lower - x if x < lower else x - upper) / margin
    value = reward_utils._sigmoids(d, value_at_margin, sigmoid)  # evaluated even in bounds, as stock does
    return 1.0 if in_bounds else float(value)


@functools.cache
def _fast_reward_utils() -> types.SimpleNamespace:
    """``metaworld.utils.reward_utils`` as seen by the fast methods: the same, with a fast ``tolerance``."""
    from metaworld.utils import reward_utils

    return types.SimpleNamespace(**{**vars(reward_utils), "tolerance": _fast_tolerance})


def _touching_object(self: Any, object_geom_id: int) -> bool:
    """Stock ``SawyerXYZEnv.touching_object`` without Python loops over ``data.contact``."""
    data = self.data
    if data.ncon == 0:
        return False  # stock: 0 < sum([]) is False
    contact = data.contact
    geom = contact.geom
    with_object = (geom == object_geom_id).any(axis=1)
    left = with_object & (geom == self._fast_leftpad_id).any(axis=1)
    right = with_object & (geom == self._fast_rightpad_id).any(axis=1)
    efc_force, efc_address = data.efc_force, contact.efc_address
    leftpad_object_contact_force = sum(efc_force[a] for a in efc_address[left].tolist())
    rightpad_object_contact_force = sum(efc_force[a] for a in efc_address[right].tolist())
    return 0 < leftpad_object_contact_force and 0 < rightpad_object_contact_force


def _get_curr_obs_combined_no_goal(self: Any) -> npt.NDArray[np.float64]:
    """Stock hand position, gripper opening and padded object poses, filled into one array."""
    xpos = self.data.xpos
    out = np.zeros(4 + self._obs_obj_max_len)
    out[:3] = xpos[self._fast_hand_id]
    # np.linalg.norm of a 1-D float array is sqrt(x.dot(x)); np.clip of a scalar is min(max(.)), NaN kept
    apart = xpos[self._fast_rightclaw_id] - xpos[self._fast_leftclaw_id]
    out[3] = min(max(math.sqrt(apart.dot(apart)) / 0.1, 0.0), 1.0)
    obj_pos = self._get_pos_objects()
    obj_quat = self._get_quat_objects()
    n = len(obj_pos) // 3
    assert len(obj_pos) % 3 == 0 and len(obj_quat) % 4 == 0 and len(obj_quat) // 4 == n
    for i in range(n):
        out[4 + 7 * i:7 + 7 * i] = obj_pos[3 * i:3 * i + 3]
        out[7 + 7 * i:11 + 7 * i] = obj_quat[4 * i:4 * i + 4]
    return out


def _get_obs(self: Any) -> npt.NDArray[np.float64]:
    """Stock frame stacking: current, previous, goal (zeros when partially observable)."""
    pos_goal = self._get_pos_goal()
    curr_obs = self._get_curr_obs_combined_no_goal()
    n = len(curr_obs)
    obs = np.empty(2 * n + len(pos_goal))
    obs[:n] = curr_obs
    obs[n:2 * n] = self._prev_obs
    obs[2 * n:] = 0.0 if self._partially_observable else pos_goal
    self._prev_obs = curr_obs
    return obs


# A bound method pickles as ``getattr(env, func.__name__)``: with the attribute's own name an
# unpickled env (Meta-World pickles its ``__dict__``) gets the class's stock methods back, so it
# stays exact; it is just no longer fast.
for _func, _name in ((_touching_object, "touching_object"), (_get_curr_obs_combined_no_goal, "_get_curr_obs_combined_no_goal"),
                     (_get_obs, "_get_obs")):
    _func.__name__ = _name


def install(env: Any) -> Any:
    """Put the fast methods on one Meta-World v3 env instance (its class and module untouched)."""
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    if not isinstance(env, SawyerXYZEnv):
        raise TypeError(f"metaworld_fast.install needs a Meta-World SawyerXYZEnv, got {type(env).__name__}")
    cls = type(env)
    data = env.data
    env._fast_leftpad_id = data.geom("leftpad_geom").id
    env._fast_rightpad_id = data.geom("rightpad_geom").id
    env._fast_hand_id = data.body("hand").id
    env._fast_rightclaw_id = data.body("rightclaw").id
    env._fast_leftclaw_id = data.body("leftclaw").id
    # Only replace what the class inherits unchanged from SawyerXYZEnv: an override keeps its own code.
    def stock(*names: str) -> bool:
        return all(getattr(cls, n) is getattr(SawyerXYZEnv, n) for n in names)

    if stock("touching_object"):
        env.touching_object = types.MethodType(_touching_object, env)
    if stock("_get_curr_obs_combined_no_goal", "get_endeff_pos"):  # the fast one reads the hand body itself
        env._get_curr_obs_combined_no_goal = types.MethodType(_get_curr_obs_combined_no_goal, env)
    if stock("_get_obs"):
        env._get_obs = types.MethodType(_get_obs, env)
    from metaworld.utils import reward_utils

    # Methods of the env's own classes that use scipy's Rotation or Meta-World's tolerance get
    # rebuilt with the fast stand-ins in their globals (the quaternion and the reward shaping).
    for name in sorted({n for c in cls.__mro__ for n, v in vars(c).items() if isinstance(v, types.FunctionType)}):
        if name in vars(env):
            continue
        func = getattr(cls, name)
        if not isinstance(func, types.FunctionType) or not func.__module__.startswith("metaworld."):
            continue
        used, glb = _names_in(func.__code__), func.__globals__
        replacements: dict[str, Any] = {}
        if "Rotation" in used and "Rotation" in glb:
            replacements["Rotation"] = _FastRotation
        if "reward_utils" in used and glb.get("reward_utils") is reward_utils:
            replacements["reward_utils"] = _fast_reward_utils()
        if "tolerance" in used and glb.get("tolerance") is reward_utils.tolerance:
            replacements["tolerance"] = _fast_tolerance
        if replacements:
            setattr(env, name, types.MethodType(_with_globals(func, replacements), env))
    env._metarl_fast = True
    return env
