"""A checker of the H5MD 1.1 layout rules our files promise (https://www.nongnu.org/h5md/h5md.html).

``check(path)`` returns a list of violations (empty: the file follows the rules checked here); ``assert_h5md``
raises with all of them. Checked, for every file kind we write (trajectories, CLI runs with observables, MCMC
chains, killed ``.partial`` files, files other programs wrote):

* ``/h5md``: attribute ``version``, an integer array ``[1, 0]`` or ``[1, 1]``; groups ``author`` (``name``,
  optional ``email``) and ``creator`` (``name``, ``version``), all fixed-length ASCII strings;
* ``/h5md/modules/<name>``: each with an integer ``version`` pair; ``unit`` attributes anywhere require the
  ``units`` module and must be fixed-length strings made of unit symbols with optional integer powers
  (``"nm"``, ``"nm+2"``, ``"kJ mol-1"``, a leading number such as ``"1e-3 s"``);
* ``/particles/<group>``: a ``box`` group with an integer ``dimension`` and a string array ``boundary`` of that
  length (each ``"none"`` or ``"periodic"``; ``periodic`` requires ``edges``); a time-dependent ``position``
  whose last axis is the dimension;
* every time-dependent element (a group with ``value``) under ``/particles`` and ``/observables``: ``step``
  integer, ``time`` (if present) floating point, each either a scalar (fixed interval) or a 1-D dataset as long
  as ``value``'s first axis; ``value`` resizable along that axis; ``step`` strictly increasing; and, optionally
  (``committed_only=True``), no fill values: no step ``-1``, no NaN time.
"""

from __future__ import annotations

import re

import h5py
import numpy as np

# unit symbols of the H5MD units module (SI base and derived units, and the accepted non-SI ones), with SI prefixes
UNIT_SYMBOLS = ("m", "g", "s", "A", "K", "mol", "cd", "rad", "sr", "Hz", "N", "Pa", "J", "W", "C", "V", "F",
                "Ohm", "S", "Wb", "T", "H", "lm", "lx", "Bq", "Gy", "Sv", "kat", "l", "L", "min", "h", "d",
                "eV", "u", "Da", "bar", "atm", "cal", "Angstrom", "e", "mmHg")
PREFIXES = ("y", "z", "a", "f", "p", "n", "u", "\u00b5", "m", "c", "d", "da", "h", "k", "M", "G", "T", "P",
            "E", "Z", "Y", "")
NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
POWER = re.compile(r"^(?P<sym>[A-Za-z\u00b5]+)(?P<pow>[+-]?\d+)?$")


def is_unit_token(token: str) -> bool:
    if NUMBER.match(token):
        return True
    m = POWER.match(token)
    if not m:
        return False
    sym = m.group("sym")
    return any(sym == p + u for p in PREFIXES for u in UNIT_SYMBOLS)


def _fixed_ascii(obj, name) -> str | None:
    """None if attribute ``name`` of ``obj`` is a fixed-length ASCII string (or array of them), else why not."""
    tid = obj.attrs.get_id(name).get_type()
    if not isinstance(tid, h5py.h5t.TypeStringID):
        return f"{obj.name} attribute {name!r} is not a string (HDF5 class {tid.get_class()})"
    if tid.is_variable_str():
        return f"{obj.name} attribute {name!r} is a variable-length string; H5MD asks for fixed length"
    if tid.get_cset() != h5py.h5t.CSET_ASCII:
        return f"{obj.name} attribute {name!r} is not ASCII-encoded"
    return None


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _int_pair(v) -> bool:
    a = np.asarray(v)
    return a.shape == (2,) and np.issubdtype(a.dtype, np.integer)


def _check_time_series(g, errors: list[str], committed_only: bool, dim: int | None = None) -> None:
    value = g["value"]
    n = value.shape[0] if value.shape else 0
    if value.maxshape and value.maxshape[0] is not None:
        errors.append(f"{value.name} is not resizable along its first (frame) axis")
    if "step" not in g:
        errors.append(f"{g.name} has value but no step")
        return
    for key, kind in (("step", np.integer), ("time", np.floating)):
        if key not in g:
            continue
        ds = g[key]
        if not isinstance(ds, h5py.Dataset) or not np.issubdtype(ds.dtype, kind):
            errors.append(f"{g.name}/{key} must be a {kind.__name__} dataset")
            continue
        if ds.shape == ():
            continue  # fixed interval
        if ds.ndim != 1 or ds.shape[0] != n:
            errors.append(f"{ds.name} has shape {ds.shape}; value has {n} frames")
            continue
        data = ds[...]
        if key == "step" and n > 1 and not np.all(np.diff(data) > 0):
            errors.append(f"{ds.name} is not strictly increasing")
        if committed_only and key == "step" and np.any(data == -1):
            errors.append(f"{ds.name} shows fill values (step -1): uncommitted frames are visible")
        if committed_only and key == "time" and np.any(np.isnan(data)):
            errors.append(f"{ds.name} shows fill values (NaN): uncommitted frames are visible")
    if dim is not None and value.ndim >= 2 and value.shape[-1] != dim:
        errors.append(f"{value.name} has last axis {value.shape[-1]}, the box dimension is {dim}")


def check(path, committed_only: bool = True) -> list[str]:
    errors: list[str] = []
    units: list[tuple[str, str]] = []
    with h5py.File(path, "r") as f:
        if "h5md" not in f:
            return [f"{path}: no /h5md group"]
        h5 = f["h5md"]
        if "version" not in h5.attrs or not _int_pair(h5.attrs["version"]):
            errors.append("/h5md attribute version must be an integer pair")
        elif list(h5.attrs["version"]) not in ([1, 0], [1, 1]):
            errors.append(f"/h5md version {list(h5.attrs['version'])} is not 1.0 or 1.1")
        for grp, keys, optional in (("author", ("name",), ("email",)), ("creator", ("name", "version"), ())):
            if grp not in h5:
                errors.append(f"/h5md/{grp} is missing")
                continue
            for k in keys:
                if k not in h5[grp].attrs:
                    errors.append(f"/h5md/{grp} has no attribute {k!r}")
            for k in (*keys, *optional):
                if k in h5[grp].attrs:
                    bad = _fixed_ascii(h5[grp], k)
                    if bad:
                        errors.append(bad)
        modules = set()
        if "modules" in h5:
            for name, m in h5["modules"].items():
                modules.add(name)
                if "version" not in m.attrs or not _int_pair(m.attrs["version"]):
                    errors.append(f"/h5md/modules/{name} needs an integer version pair")

        def visit(name, obj):
            if "unit" in obj.attrs:
                units.append(("/" + name, _text(obj.attrs["unit"])))
                bad = _fixed_ascii(obj, "unit")
                if bad:
                    errors.append(bad)

        f.visititems(visit)
        for where, u in units:
            if "units" not in modules:
                errors.append(f"{where} has unit {u!r} but /h5md/modules/units is not declared")
            if not u.split() or not all(is_unit_token(t) for t in u.split()):
                errors.append(f"{where} unit {u!r} is not an H5MD unit string")
        for gname, grp in f.get("particles", {}).items():
            if "box" not in grp:
                errors.append(f"/particles/{gname} has no box")
                continue
            box = grp["box"]
            dim = None
            if "dimension" not in box.attrs or not np.issubdtype(np.asarray(box.attrs["dimension"]).dtype,
                                                                  np.integer):
                errors.append(f"/particles/{gname}/box needs an integer dimension")
            else:
                dim = int(box.attrs["dimension"])
            if "boundary" not in box.attrs:
                errors.append(f"/particles/{gname}/box has no boundary")
            else:
                bad = _fixed_ascii(box, "boundary")
                if bad:
                    errors.append(bad)
                bnd = [_text(b) for b in np.atleast_1d(box.attrs["boundary"])]
                if dim is not None and len(bnd) != dim:
                    errors.append(f"/particles/{gname}/box boundary has {len(bnd)} entries, dimension {dim}")
                if any(b not in ("none", "periodic") for b in bnd):
                    errors.append(f"/particles/{gname}/box boundary {bnd} has values other than none/periodic")
                if "periodic" in bnd and "edges" not in box:
                    errors.append(f"/particles/{gname}/box is periodic but has no edges")
            if "position" not in grp:
                errors.append(f"/particles/{gname} has no position")
            for ename, el in grp.items():
                if isinstance(el, h5py.Group) and "value" in el:
                    _check_time_series(el, errors, committed_only, dim if ename == "position" else None)
        if "observables" in f:
            def visit_obs(name, obj):
                if isinstance(obj, h5py.Group) and "value" in obj:
                    _check_time_series(obj, errors, committed_only)

            f["observables"].visititems(visit_obs)
    return errors


def assert_h5md(path, committed_only: bool = True) -> None:
    errors = check(path, committed_only)
    assert not errors, f"{path} breaks H5MD 1.1:\n  " + "\n  ".join(errors)
