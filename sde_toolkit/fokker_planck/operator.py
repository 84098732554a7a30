"""Assembly of the sparse Fokker–Planck generator by exponential fitting (Scharfetter–Gummel / Chang–Cooper).

Finite-volume form of the Itô Fokker–Planck equation with diagonal ``D = g g^T``::

    dp/dt = -div J,    J_k = f_k p - 1/2 d_k (D_kk p)

Across the face between cells ``a`` and ``b = a + e_k`` (distance ``h``) the flux is the exact solution of the
local two-point problem with ``u = D p`` and constant ``f_k / D_kk`` (Scharfetter & Gummel 1969)::

    J = (1 / 2h) [B(-z) D_a p_a - B(z) D_b p_b],   z = 2 f_k(x_face) h / D_kk(x_face),   B(z) = z / expm1(z)

which equals Chang & Cooper's weighted flux ``J = f [delta p_a + (1 - delta) p_b] - (D/2h)(p_b - p_a)`` with
``delta = delta_cc(-z)``. Facts: the off-diagonal entries are >= 0 and the columns sum to zero, so ``L`` is a
rate matrix (mass conserved, positivity preserved by implicit Euler at any ``dt``); second-order accurate in
space. When the SDE has a potential (overdamped Langevin, ``f = -grad V / gamma``, ``D = 2 kT / gamma``) the
Péclet number is the exact potential difference ``z = -(V_b - V_a) / kT``: then the Boltzmann weights
``exp(-V(x_i) / kT)`` give zero flux on every face, and are the exact discrete stationary state.

The matrix acts on the C-order flattening of a density of shape ``grid.shape``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .grid import Grid

SCHEMES = ("exponential", "upwind", "central")


def bernoulli(z) -> np.ndarray:
    """The Bernoulli function ``B(z) = z / (e^z - 1)`` computed with ``expm1``; ``B(0) = 1``.

    Facts: ``B(z) > 0``; ``B(-z) = B(z) + z``; ``B(z) -> 0`` for ``z -> +inf`` (no overflow: ``z / inf = 0``) and
    ``B(z) ~ -z`` for ``z -> -inf``. Accurate to round-off for every real ``z`` (no cancellation: ``expm1`` is
    accurate near 0 and the only 0/0 point is handled exactly).
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        out = z / np.expm1(z)
    return np.where(z == 0.0, 1.0, out)


def chang_cooper_delta(w) -> np.ndarray:
    """Chang–Cooper weight ``delta(w) = 1/w - 1/(e^w - 1)``, with ``delta(0) = 1/2``.

    Facts: ``0 < delta < 1``, ``delta(w) = 1/2 - w/12 + w^3/720 - ...`` near 0 (used for ``|w| < 0.1`` to avoid
    cancellation), ``delta(w) ~ 1/w`` for ``w -> +inf`` and ``delta -> 1`` for ``w -> -inf``; finite for every
    real ``w``. ``delta(w) = (1 - B(w)) / w``.
    """
    w = np.asarray(w, dtype=np.float64)
    small = np.abs(w) < 0.1
    w2 = w * w
    series = 0.5 - w / 12.0 * (1.0 - w2 / 60.0 * (1.0 - w2 / 42.0 * (1.0 - w2 / 40.0)))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        direct = 1.0 / w - 1.0 / np.expm1(w)
    return np.where(small, series, direct)


@dataclass
class AxisFaces:
    """Face coefficients along one axis: ``J = alpha * p[a] - beta * p[b]`` on interior (and periodic) faces;
    wall fluxes ``J_lower = -rate_lower * p[first layer]`` and ``J_upper = rate_upper * p[last layer]`` (zero
    for reflecting walls); ``face_shape`` is the block shape of interior faces."""

    a: np.ndarray
    b: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    wall_lower: np.ndarray | None
    wall_upper: np.ndarray | None


@dataclass
class Operator:
    """The assembled generator ``L`` (CSR, ``dp/dt = L p``) with its face data (for currents) and the
    per-cell absorption rate ``outflow`` (``-1^T L`` times ``1``, zero without absorbing walls).

    On a non-periodic 1-D grid ``L`` is tridiagonal and ``bands`` holds it in LAPACK banded form
    (``(3, size)``: ``bands[0, j + 1] = L[j, j + 1]``, ``bands[1, j] = L[j, j]``, ``bands[2, j] = L[j + 1, j]``, as
    :func:`scipy.linalg.solve_banded` takes it), so solves cost ``O(size)``; ``None`` otherwise. ``energy`` holds
    the potential at the cell centres (flat, C order) when the fluxes were built from potential differences.
    """

    L: sp.csr_matrix
    faces: list
    outflow: np.ndarray
    bands: np.ndarray | None = None
    energy: np.ndarray | None = None


def _face_points(grid: Grid, k: int) -> np.ndarray:
    axes = list(grid.centers)
    axes[k] = grid.edges[k]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _diag_diffusion(sde, x: np.ndarray, t: float, k: int | None = None) -> np.ndarray:
    """``D_kk`` (or all diagonals when ``k`` is None) at points ``x``; rejects non-diagonal ``D``."""
    D = np.asarray(sde.diffusion_matrix(x, t), dtype=np.float64)
    if D.shape != (x.shape[0], sde.dim, sde.dim):
        raise ValueError(f"diffusion_matrix returned shape {D.shape}, expected {(x.shape[0], sde.dim, sde.dim)}")
    if sde.dim > 1:
        diag = np.einsum("nii->ni", D)
        off = np.abs(D).sum(axis=(1, 2)) - np.abs(diag).sum(axis=1)
        scale = np.abs(diag).max() if diag.size else 1.0
        if np.any(off > 1e-12 * max(scale, 1e-300)):
            i = int(np.argmax(off))
            raise ValueError(
                f"the Fokker–Planck solver needs a diagonal diffusion matrix D = g g^T; got off-diagonal entries at "
                f"x = {x[i].tolist()}: D = {D[i].tolist()} (noise_type={sde.noise_type!r})"
            )
    diag = np.einsum("nii->ni", D)
    return diag if k is None else diag[:, k]


def _check_positive(D: np.ndarray, x: np.ndarray, what: str) -> None:
    bad = ~(np.isfinite(D) & (D > 0))
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"diffusion must be positive on the grid: D = {D.ravel()[i]!r} at {what} x = {x[i % x.shape[0]].tolist()}"
        )


def _check_finite(f: np.ndarray, x: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(f)):
        i = int(np.flatnonzero(~np.isfinite(f.ravel()))[0])
        raise ValueError(f"drift is not finite at {what} x = {x[i].tolist()}: {f.ravel()[i]!r}")


def assemble(sde, grid: Grid, t: float = 0.0, scheme: str = "exponential", use_potential: bool = True) -> Operator:
    """Assemble the generator ``L`` of ``dp/dt = L p`` for ``sde`` on ``grid`` at time ``t``.

    Args:
        sde: an SDE with the batched face (``drift``, ``diffusion_matrix``) and ``dim == grid.dim``.
        grid: the grid.
        t: time at which drift and diffusion are evaluated.
        scheme: ``"exponential"`` (Scharfetter–Gummel / Chang–Cooper, default), ``"upwind"`` (first order,
            positive) or ``"central"`` (second order, not positive for cell Péclet numbers > 2).
        use_potential: for :class:`OverdampedLangevin`, take the Péclet numbers from potential differences
            (exact Boltzmann equilibrium). ``False`` uses the drift at the faces, like any other SDE.

    Returns:
        The :class:`Operator` (CSR matrix, face coefficients, absorption rates).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if sde.dim != grid.dim:
        raise ValueError(f"the SDE is {sde.dim}-dimensional but the grid has {grid.dim} axes")
    shape, N = grid.shape, grid.size
    idx = np.arange(N).reshape(shape)
    centers = grid.points()
    potential = use_potential and scheme == "exponential" and sde.gradient_flow
    if potential:
        U, kT, gamma = sde.gradient_flow_form()
        potential = U.has_energy
    if potential:
        kT = float(kT)
        D0 = 2.0 * kT / float(gamma)
        Vc = np.asarray(U.energy(centers), dtype=np.float64).reshape(shape)
        _check_finite(Vc, centers, "cell centre (potential energy)")
        Dcell_all = np.full((N, grid.dim), D0)
    else:
        Dcell_all = _diag_diffusion(sde, centers, t)
        _check_positive(Dcell_all, centers, "cell centre")

    rows, cols, vals = [], [], []
    colsum = np.zeros(N)
    outflow = np.zeros(N)
    faces: list[AxisFaces] = []
    for k in range(grid.dim):
        h = grid.spacing[k]
        n_k = shape[k]
        periodic = grid.periodic[k]
        Dc = Dcell_all[:, k].reshape(shape)
        if not potential:
            xf = _face_points(grid, k)
            ff = np.asarray(sde.drift(xf, t), dtype=np.float64)
            if ff.shape != xf.shape:
                raise ValueError(f"drift returned shape {ff.shape}, expected {xf.shape}")
            ff = ff[:, k]
            _check_finite(ff, xf, "cell face")
            fshape = list(shape)
            fshape[k] = n_k + 1
            ff = ff.reshape(fshape)
            Df = _diag_diffusion(sde, xf, t, k)
            _check_positive(Df, xf, "cell face")
            Df = Df.reshape(fshape)

        def take(arr, sl, axis=k):
            s = [slice(None)] * grid.dim
            s[axis] = sl
            return arr[tuple(s)]

        # interior faces j = 1..n-1 between cells j-1 (a) and j (b); periodic adds the wrap face j = n
        a = take(idx, slice(0, n_k - 1))
        b = take(idx, slice(1, n_k))
        if periodic:
            a = idx
            b = np.roll(idx, -1, axis=k)
        if not potential:
            Da, Db = Dc.ravel()[a], Dc.ravel()[b]
        if potential:
            Va = take(Vc, slice(0, n_k - 1)) if not periodic else Vc
            if periodic:
                ghost = centers.reshape(*shape, grid.dim)
                ghost = take(ghost, slice(n_k - 1, n_k)).reshape(-1, grid.dim).copy()
                ghost[:, k] += h  # unwrapped neighbour: tilted potentials keep their slope across the seam
                Vg = np.asarray(U.energy(ghost), dtype=np.float64)
                gshape = list(shape)
                gshape[k] = 1
                Vb = np.concatenate([take(Vc, slice(1, n_k)), Vg.reshape(gshape)], axis=k)
            else:
                Vb = take(Vc, slice(1, n_k))
            z = -(Vb - Va) / kT
            alpha = D0 * bernoulli(-z) / (2 * h)
            beta = D0 * bernoulli(z) / (2 * h)
        else:
            f = take(ff, slice(1, n_k + 1)) if periodic else take(ff, slice(1, n_k))
            Dface = take(Df, slice(1, n_k + 1)) if periodic else take(Df, slice(1, n_k))
            if scheme == "exponential":
                z = 2.0 * f * h / Dface
                alpha = Da * bernoulli(-z) / (2 * h)
                beta = Db * bernoulli(z) / (2 * h)
            elif scheme == "upwind":
                alpha = np.maximum(f, 0.0) + Da / (2 * h)
                beta = -np.minimum(f, 0.0) + Db / (2 * h)
            else:
                alpha = 0.5 * f + Da / (2 * h)
                beta = -0.5 * f + Db / (2 * h)
        a_r, b_r = a.ravel(), b.ravel()
        av, bv = alpha.ravel() / h, beta.ravel() / h
        rows += [b_r, a_r]
        cols += [a_r, b_r]
        vals += [av, bv]
        colsum += np.bincount(a_r, av, minlength=N) + np.bincount(b_r, bv, minlength=N)

        # walls: reflecting -> no flux; absorbing -> p = 0 on the wall face, half-cell distance h/2
        walls: list[np.ndarray | None] = []  # (lower, upper); None for a non-absorbing wall
        for side in (0, 1):
            if grid.boundaries[k][side] != "absorbing":
                walls.append(None)
                continue
            layer = 0 if side == 0 else n_k - 1
            cell = take(idx, slice(layer, layer + 1)).ravel()
            Dcell = Dc.ravel()[cell]
            if potential:
                wall_pts = centers[cell].copy()
                wall_pts[:, k] = grid.edges[k][0 if side == 0 else n_k]
                Vw = np.asarray(U.energy(wall_pts), dtype=np.float64)
                Vi = Vc.ravel()[cell]
                # z in the +x direction over the half cell
                zw = -(Vi - Vw) / kT if side == 0 else -(Vw - Vi) / kT
                fw = None
            else:
                fw = take(ff, slice(0, 1) if side == 0 else slice(n_k, n_k + 1)).ravel()
                Dw = take(Df, slice(0, 1) if side == 0 else slice(n_k, n_k + 1)).ravel()
                zw = fw * h / Dw
            if scheme == "exponential":
                rate = Dcell * (bernoulli(zw) if side == 0 else bernoulli(-zw)) / h
            elif scheme == "upwind":
                assert fw is not None  # the potential form (fw = None) is exponential-scheme only
                rate = (np.maximum(-fw, 0.0) if side == 0 else np.maximum(fw, 0.0)) + Dcell / h
            else:
                rate = Dcell / h
            outflow[cell] += rate / h
            walls.append(rate.reshape(take(idx, slice(layer, layer + 1)).shape))
        faces.append(AxisFaces(a=a, b=b, alpha=alpha, beta=beta, wall_lower=walls[0], wall_upper=walls[1]))

    energy = Vc.ravel() if potential else None
    if grid.dim == 1 and not grid.periodic[0]:
        # 1-D walls: L is tridiagonal. Same values as the COO route below, bit for bit (each entry is one
        # term; the diagonal is the same two-term sum), without the COO -> CSR sort of 3 N entries.
        L, bands = _tridiagonal(vals[0], -colsum - outflow, vals[1])
        return Operator(L=L, faces=faces, outflow=outflow, bands=bands, energy=energy)
    diag_idx = np.arange(N)
    rows.append(diag_idx)
    cols.append(diag_idx)
    vals.append(-colsum - outflow)
    L = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N, N)
    )
    return Operator(L=L, faces=faces, outflow=outflow)


def _tridiagonal(lower: np.ndarray, diag: np.ndarray, upper: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """CSR matrix and LAPACK bands of the tridiagonal matrix with sub-diagonal ``lower`` (``L[j + 1, j]``),
    ``diag`` and super-diagonal ``upper`` (``L[j, j + 1]``), built directly (no COO sort, no duplicates)."""
    N = diag.size
    data = np.empty((N, 3))
    data[0, 0] = 0.0
    data[1:, 0] = lower
    data[:, 1] = diag
    data[:-1, 2] = upper
    data[-1, 2] = 0.0
    itype = np.int32 if 3 * N < np.iinfo(np.int32).max else np.int64
    base = np.arange(N, dtype=itype)
    indices = np.empty((N, 3), dtype=itype)
    indices[:, 0] = base - 1
    indices[:, 1] = base
    indices[:, 2] = base + 1
    counts = np.full(N, 3, dtype=itype)
    counts[0] = counts[-1] = 2
    indptr = np.zeros(N + 1, dtype=itype)
    np.cumsum(counts, out=indptr[1:])
    L = sp.csr_matrix((data.ravel()[1:-1], indices.ravel()[1:-1], indptr), shape=(N, N))
    L.has_sorted_indices = True
    bands = np.zeros((3, N))
    bands[0, 1:] = upper
    bands[1] = diag
    bands[2, :-1] = lower
    return L, bands


def face_currents(op: Operator, grid: Grid, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """Probability current ``J_k`` on the faces of each axis for the density ``p`` (shape ``grid.shape``).

    Axis ``k`` returns ``n_k + 1`` faces (``grid.edges[k]``, walls included: zero when reflecting) or, when
    periodic, ``n_k`` faces (the upper face of each cell; the last one is the seam).
    """
    flat = np.asarray(p, dtype=np.float64).ravel()
    out = []
    for k, fc in enumerate(op.faces):
        inner = fc.alpha * flat[fc.a] - fc.beta * flat[fc.b]
        if grid.periodic[k]:
            out.append(inner)
            continue
        wshape = list(grid.shape)
        wshape[k] = 1
        lower = np.zeros(wshape)
        upper = np.zeros(wshape)
        pk = flat.reshape(grid.shape)
        if fc.wall_lower is not None:
            lower = -fc.wall_lower * np.take(pk, [0], axis=k)
        if fc.wall_upper is not None:
            upper = fc.wall_upper * np.take(pk, [grid.shape[k] - 1], axis=k)
        out.append(np.concatenate([lower, inner, upper], axis=k))
    return tuple(out)
