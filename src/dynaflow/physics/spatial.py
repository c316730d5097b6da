"""Vector and spatial algebra for :mod:`dynaflow.physics.legged`: MJX's formulas (``mujoco.mjx._src.math``)
broadcast over leading axes, written element-wise so XLA fuses them instead of emitting small dots.

Vectors are on the last axis; spatial vectors are ``(…, 6) = [angular, linear]``; an inertia is the tuple
``(3x3 rotational inertia about the centre, mass * offset, mass)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross(a, b):
    return jnp.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def dot(a, b):
    """Sum over the last axis; unrolled for short vectors, so XLA fuses it instead of emitting a dot."""
    n = a.shape[-1] if a.ndim >= b.ndim else b.shape[-1]
    if n > 6:
        return jnp.sum(a * b, axis=-1)
    out = a[..., 0] * b[..., 0]
    for i in range(1, n):
        out = out + a[..., i] * b[..., i]
    return out


def qmul(u, v):
    u0, u1, u2, u3 = (u[..., i] for i in range(4))
    v0, v1, v2, v3 = (v[..., i] for i in range(4))
    return jnp.stack(
        [
            u0 * v0 - u1 * v1 - u2 * v2 - u3 * v3,
            u0 * v1 + u1 * v0 + u2 * v3 - u3 * v2,
            u0 * v2 - u1 * v3 + u2 * v0 + u3 * v1,
            u0 * v3 + u1 * v2 - u2 * v1 + u3 * v0,
        ],
        axis=-1,
    )


def rotate(vec, quat):
    s, u = quat[..., :1], quat[..., 1:]
    r = 2 * (dot(u, vec)[..., None] * u) + (s * s - dot(u, u)[..., None]) * vec
    return r + 2 * s * cross(u, vec)


def qmat(q):
    """Rotation matrix (…, 3, 3) of unit quaternions (…, 4)."""
    w, x, y, z = (q[..., i] for i in range(4))
    ww, xx, yy, zz = w * w, x * x, y * y, z * z
    rows = [
        [ww + xx - yy - zz, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), ww - xx + yy - zz, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), ww - xx - yy + zz],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def normalize(x):
    """MJX's ``normalize_with_norm`` on the last axis (its norm has a finite gradient at zero)."""
    zero = jnp.all(jnp.abs(x) <= 1e-8, axis=-1, keepdims=True)
    n = jnp.where(zero, 0.0, jnp.linalg.norm(jnp.where(zero, 1.0, x), axis=-1, keepdims=True))
    return x / (n + 1e-6 * (n == 0.0)), n[..., 0]


def axis_angle(axis, angle):
    half = 0.5 * angle[..., None]
    return jnp.concatenate([jnp.cos(half), axis * jnp.sin(half)], axis=-1)


def barrier(*xs):
    """Materialise intermediate results: without it XLA's CPU fusion copies whole chains of element-wise
    producers (the kinematics) into every consumer and recomputes them per output element."""
    return jax.lax.optimization_barrier(xs)


def suffix_sum(x):
    """Sums over links l..L-1 along axis 1 (a body's subtree within its leg), as explicit adds."""
    parts = [x[:, -1]]
    for link in range(x.shape[1] - 2, -1, -1):
        parts.append(parts[-1] + x[:, link])
    return jnp.stack(parts[::-1], axis=1)


def outer_sum(a, b):
    """``a @ swapaxes(b)`` over the last axis, (…, n, k) x (…, m, k) -> (…, n, m), written element-wise
    (unrolled over k): XLA fuses it with its neighbours, where a batched dot of a few rows is an operation
    of its own and slow on a CPU."""
    return dot(a[..., :, None, :], b[..., None, :, :])


def matvec(a, v):
    return dot(a, v[..., None, :])


def motion_cross(u, v):
    ua, ul, va, vl = u[..., :3], u[..., 3:], v[..., :3], v[..., 3:]
    return jnp.concatenate([cross(ua, va), cross(ul, va) + cross(ua, vl)], axis=-1)


def motion_cross_force(v, f):
    va, vl, fa, fl = v[..., :3], v[..., 3:], f[..., :3], f[..., 3:]
    return jnp.concatenate([cross(va, fa) + cross(vl, fl), cross(va, fl)], axis=-1)


def inert_mul(inert, v):
    rot, mpos, mass = inert
    va, vl = v[..., :3], v[..., 3:]
    ang = matvec(rot, va) + cross(mpos, vl)
    lin = mass[..., None] * vl - cross(mpos, va)
    return jnp.concatenate([ang, lin], axis=-1)


def inert_add(a, b):
    return tuple(x + y for x, y in zip(a, b, strict=True))
