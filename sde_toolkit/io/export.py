"""Export a trajectory file to npz, csv (long format) or NetCDF (through xarray, optional extra ``netcdf``), and
an MCMC chains file to ArviZ's NetCDF form of ``InferenceData`` (optional extra ``arviz``).

npz and csv are written frame by frame (bounded memory); NetCDF goes through an in-memory ``xarray.Dataset``.
Every format is written to a private temporary file next to the output, removed if anything fails, and renamed
into place at the end: never onto the input itself (the same file by path, ``.partial`` name or hard link), and
never over an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

from ._fs import publish
from .h5md import RUN_GROUP, H5MDRun, _h5py, _LazyFile, final_path, partial_path
from .netcdf import (
    NETCDF_EXTRA_HINT,
    MissingExtraError,
    chains_inference_data,
    require_arviz,
    require_xarray,
    trajectory_dataset,
    write_netcdf,
)

FORMATS = ("npz", "csv", "netcdf", "arviz")
__all__ = ["FORMATS", "MissingExtraError", "NETCDF_EXTRA_HINT", "export"]


def export(path, format: str, out, *, allow_partial: bool = False, overwrite: bool = False,
           frames_per_batch: int | None = None, force: bool = False) -> Path:
    """Write the positions (and observables, for npz) of a trajectory file in another format.

    Args:
        path: an H5MD trajectory file.
        format: ``"npz"`` (arrays ``t``, ``steps``, ``x`` ``(n_frames, n_paths, dim)``, observables as
            ``obs_<name>``, ``config`` and ``plan`` as JSON text, ``status``), ``"csv"`` (long format, one row
            per frame and path: ``frame,time,path,x0,...,x{d-1}``, values with 17 significant digits), or
            ``"netcdf"`` (CF conventions: coordinates ``time``, ``path``, ``dim`` with units; variables
            ``x(time, path, dim)``, ``step(time)`` and the stored observables; attributes ``config``, ``plan``,
            ``status``; see :mod:`sde_toolkit.io.netcdf`), or, for an MCMC chains file, ``"arviz"`` (ArviZ's
            ``InferenceData`` as NetCDF: ``posterior`` ``x(chain, draw, dim)``, ``sample_stats`` ``energy``
            and ``acceptance_rate``; open it with ``arviz.from_netcdf``).
        out: output path; never the input itself, and an existing file is replaced only with ``overwrite``.
        allow_partial: export the committed frames of an incomplete run.
        overwrite: replace an existing ``out``.
        frames_per_batch: frames read per batch (default: about 64 MB).
        force: export a file that failed verification (see :func:`sde_toolkit.io.open`).

    Returns:
        The output path.

    Raises:
        FileExistsError: ``out`` is the input (same path, its ``.partial`` or final name, or a hard link to it),
            or exists and ``overwrite`` is False. Nothing is written.
        MissingExtraError: ``"netcdf"`` without xarray/netCDF4, or ``"arviz"`` without arviz (names the extra).
        ValueError: ``"arviz"`` on a trajectory, or another format on a chains file (the message says which).
        IncompleteRunError: the run is incomplete and ``allow_partial`` is False.
        IntegrityError: the file failed verification; ``ChecksumError`` when committed frames fail their
            checksum (the temporary output is removed).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    out = Path(out)
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    _refuse_own_input(path, out)
    if os.path.lexists(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if out.is_dir():
        raise IsADirectoryError(f"output {out} is a folder; give a file name")
    kind = _file_kind(path)
    if format == "arviz" and kind != "chains":
        raise ValueError(f"{path}: format 'arviz' exports MCMC chains files (st.mcmc.langevin(..., out=...)); "
                         "this is a trajectory: use npz, csv or netcdf")
    if format != "arviz" and kind == "chains":
        raise ValueError(f"{path} is an MCMC chains file: export it with format 'arviz'")
    if format == "netcdf":
        require_xarray()
    if format == "arviz":
        require_arviz()
        return _export_arviz(path, out, allow_partial=allow_partial, overwrite=overwrite, force=force)
    run = H5MDRun(path, allow_partial=allow_partial, force=force)
    if run.x is None and format != "npz":
        raise ValueError(f"{run.path} stores no positions (observables only); export it with format='npz'")
    per = frames_per_batch or max(1, (64 << 20) // max(1, run.n_paths * run.dim * 8))
    tmp = _private_temporary(out)
    try:
        with run:
            if format == "npz":
                _export_npz(run, tmp, per)
            elif format == "csv":
                _export_csv(run, tmp, per)
            else:
                _export_netcdf(run, tmp)
        _refuse_own_input(path, out)  # the input may have been renamed into place meanwhile
        try:
            publish(tmp, out, overwrite=overwrite)
        except FileExistsError:
            raise FileExistsError(f"{out} appeared while exporting; not replacing it (pass overwrite=True)") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return out


def _file_kind(path) -> str:
    """``"chains"`` (an ``/mcmc`` group), else ``"trajectory"`` (the readers then say what is wrong)."""
    try:
        p = _LazyFile._resolve(path)
    except FileNotFoundError:
        return "trajectory"
    h5py = _h5py()
    if not h5py.is_hdf5(p):
        raise ValueError(f"{p} is not an HDF5 file")
    with h5py.File(p, "r") as f:
        return "chains" if ("mcmc" in f and RUN_GROUP not in f) else "trajectory"


def _export_arviz(path, out: Path, *, allow_partial: bool, overwrite: bool, force: bool) -> Path:
    from .chains import read_chains

    rec = read_chains(path, allow_partial=allow_partial, force=force)
    idata = chains_inference_data(
        rec.samples, energies=rec.energies, accepted=rec.accepted, n_sampled_steps=rec.n_steps - rec.burn_in,
        attrs={"method": rec.method, "step": rec.step, "kT": rec.kT, "gamma": rec.gamma, "n_steps": rec.n_steps,
               "burn_in": rec.burn_in, "thin": rec.thin, "seed": str(rec.seed.entropy), "backend": rec.backend,
               "status": rec.status, "source": str(path)})
    tmp = _private_temporary(out)
    try:
        try:
            idata.to_netcdf(str(tmp))
        except (ImportError, ValueError) as exc:
            if "netcdf" in str(exc).lower() or "engine" in str(exc).lower():
                raise MissingExtraError(f"ArviZ's NetCDF writer needs h5netcdf or netCDF4 ({exc})") from None
            raise
        _refuse_own_input(path, out)
        try:
            publish(tmp, out, overwrite=overwrite)
        except FileExistsError:
            raise FileExistsError(f"{out} appeared while exporting; not replacing it (pass overwrite=True)") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return out


def _private_temporary(out: Path) -> Path:
    """A new, empty file ``.<name>.<pid>.<random>.tmp`` next to ``out`` (created exclusively, mode from umask)."""
    for _ in range(100):
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {out}")  # pragma: no cover


def _refuse_own_input(path, out: Path) -> None:
    """``FileExistsError`` when ``out`` is the input file: the same path, its ``.partial`` or final name (the
    run may be renamed there), or the same file through a hard or symbolic link."""
    src = Path(path)
    try:
        resolved = _LazyFile._resolve(src)
    except FileNotFoundError:
        return
    names = {os.path.realpath(p) for p in (src, resolved, partial_path(final_path(resolved)), final_path(resolved))}
    same = os.path.realpath(out) in names
    if not same and os.path.exists(out):
        with contextlib.suppress(OSError):
            same = any(os.path.exists(p) and os.path.samefile(out, p) for p in names)
    if same:
        raise FileExistsError(f"refusing to export {resolved} onto itself: {out} is the input file (or the name "
                              "its run is published under); choose another output")


def _npy_header(f, shape, dtype) -> None:
    np.lib.format.write_array_header_2_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})


def _export_npz(run: H5MDRun, tmp: Path, per: int) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        def small(name, arr):
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)

        small("t", run.t)
        small("steps", run.steps)
        small("status", np.array(run.status))
        small("config", np.array(json.dumps(run.config)))
        small("plan", np.array(json.dumps(run.plan)))
        arrays = {"x": run.x} if run.x is not None else {}
        arrays.update({f"obs_{k}": v for k, v in run.observables.items()})
        for name, lazy in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                _npy_header(fh, lazy.shape, lazy.dtype)
                step = per if name == "x" else max(per, 4096)
                for a in range(0, lazy.shape[0], step):
                    fh.write(np.ascontiguousarray(lazy[a:a + step], dtype=lazy.dtype).tobytes())
        edges = run.observable_edges()
        if edges is not None:
            small("obs_histogram_bin_edges", edges)


def _export_csv(run: H5MDRun, tmp: Path, per: int) -> None:
    n, dim = run.n_paths, run.dim
    header = "frame,time,path," + ",".join(f"x{j}" for j in range(dim))
    fmt = ",".join(["%d", "%.17g", "%d"] + ["%.17g"] * dim)
    paths = np.arange(n)
    with open(tmp, "w", newline="") as fh:
        fh.write(header + "\n")
        assert run.x is not None  # export() refuses csv for runs without positions
        for a in range(0, run.n_committed, per):
            block = np.asarray(run.x[a:a + per], dtype=np.float64)
            for j in range(block.shape[0]):
                fr = a + j
                rows = np.empty((n, 3 + dim))  # "%d" formats the integer-valued columns exactly
                rows[:, 0] = fr
                rows[:, 1] = float(run.t[fr])
                rows[:, 2] = paths
                rows[:, 3:] = block[j]
                np.savetxt(fh, rows, fmt=fmt)


def _export_netcdf(run: H5MDRun, tmp: Path) -> None:
    assert run.x is not None  # export() refuses netcdf for runs without positions
    ds = trajectory_dataset(
        np.asarray(run.t), run.x[:], np.asarray(run.steps, dtype=np.int64),
        observables={k: v[:] for k, v in run.observables.items()}, edges=run.observable_edges(),
        attrs={"config": run.config, "plan": run.plan, "status": run.status, "source": str(run.path)})
    write_netcdf(ds, tmp)
