"""Run files are verified data: provenance and status digests, fletcher32 checksums, and what ``force`` does.

Every test here edits or corrupts a file the way a user, a bad disk or a bad copy would, and asserts that the
readers (``st.io.open``, ``read_chains``, ``read_density``), ``resume`` and ``sde-toolkit inspect`` refuse it with
a message that says what differs, that the refused file is left untouched, and that ``force=True`` continues and
records who forced what. Files of earlier versions (no digests) must still open, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit import cli
from sde_toolkit.config import load_config
from sde_toolkit.io import ChecksumError, IncompleteRunWarning, IntegrityError, IntegrityWarning, partial_path
from sde_toolkit.io.h5md import H5MDWriter
from sde_toolkit.runs import prepare_simulation

GOLDEN = Path(__file__).resolve().parents[1] / "resources" / "golden_ou.h5"
RUN = "parameters/sde_toolkit"
POS = "particles/all/position/value"
STATE = "parameters/sde_toolkit/checkpoint/state"

LANGEVIN = """
[sde]
type = "overdamped_langevin"
potential = {name = "double_well", a = 1.0}
kT = 0.7
dim = 1

[initial]
distribution = "normal"
n_paths = 32

[integrate]
dt = 0.001
t1 = 2.0
save_every = 4
seed = 21
driver = "batched"

[output]
flush_interval = 0.0
chunk_frames = 16
"""


def flip_bit(path, dataset, coord, byte=None):
    """Flip one bit in the raw file bytes of the chunk of ``dataset`` that holds element ``coord``."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info_by_coord(tuple(coord))
    offset = info.byte_offset + (info.size // 2 if byte is None else byte)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x10]))


def _quiet_open(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteRunWarning)
        return st.io.open(path, **kw)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """A Langevin run from a config that stopped (an error after 3 durable commits) at ``run.h5.partial``, with
    status ``running``, and the unbroken in-memory run of the same config."""
    d = tmp_path_factory.mktemp("crashed")
    cfg_path = d / "run.toml"
    cfg_path.write_text(LANGEVIN)
    job = prepare_simulation(load_config(cfg_path), out=d / "run.h5")
    ref = st.simulate(job.sde, job.x0, progress=False, **job.integrate)
    calls = {"n": 0}
    orig = H5MDWriter.commit

    def commit(self, step, state):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("simulated crash")
        return orig(self, step, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(H5MDWriter, "commit", commit)
        with pytest.raises(RuntimeError, match="simulated crash"):
            st.simulate(job.sde, job.x0, out=job.out, progress=False, config=job.config, **job.integrate,
                        **job.output)
    part = partial_path(job.out)
    with h5py.File(part, "r") as f:
        assert f[RUN].attrs["status"] == "running" and 0 < int(f[RUN]["commit"][0]) < len(ref.t)
    return part, ref


def _copy(src: Path, folder: Path) -> tuple[Path, Path]:
    """A copy of a ``.partial`` under ``folder``: (output path, its .partial)."""
    out = folder / "run.h5"
    shutil.copy(src, partial_path(out))
    return out, partial_path(out)


# -- the digest itself --------------------------------------------------------------------------------------
def test_digest_is_sha256_of_the_canonical_json_of_the_provenance(tmp_path, crashed):
    """The documented algorithm, recomputed by hand from the attributes with hashlib and json only."""
    part, _ = crashed
    with h5py.File(part, "r") as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f[RUN].attrs.items()}
    parts = {"config": json.loads(a["config"]), "plan": json.loads(a["plan"]),
             "seed": {"entropy": str(a["seed"]), "spawn_key": json.loads(a["seed_spawn_key"])},
             "noise_scheme": a["noise_scheme"], "sde_config": json.loads(a["sde_config"])}

    def canon(o):
        return json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    assert a["digest"] == "sha256:" + hashlib.sha256(canon(parts).encode()).hexdigest()
    assert json.loads(a["digest_parts"]) == {k: hashlib.sha256(canon(v).encode()).hexdigest() for k, v in parts.items()}
    assert a["digest_algorithm"] == "sha256-canonical-json-v1" and int(a["format_version"]) == 2
    assert "config.sde.kT" in json.loads(a["digest_leaves"])
    status = hashlib.sha256(canon({"digest": a["digest"], "status": "running",
                                   "record": [int(v) for v in h5py.File(part, "r")[RUN]["commit"][...]],
                                   "expected": int(a["n_frames_expected"])}).encode()).hexdigest()
    assert status in json.loads(a["status_digest"])


def test_every_committed_dataset_carries_a_checksum_and_opens_with_plain_h5py(tmp_path):
    out = tmp_path / "o.h5"
    st.simulate(st.OrnsteinUhlenbeck(1.0, 0.5, dim=2), np.zeros((8, 2)), t1=0.5, dt=0.01, seed=1, out=out,
                observables=["mean", "running_mean", "histogram"], histogram_range=[-2, 2], histogram_bins=4,
                progress=False)
    with h5py.File(out, "r") as f:
        chunked = []
        f.visititems(lambda n, o: chunked.append((n, o.fletcher32)) if isinstance(o, h5py.Dataset) and o.chunks
                     else None)
        assert chunked and all(fl for _, fl in chunked), chunked
        assert f[STATE].fletcher32 and f[POS].fletcher32
        np.testing.assert_array_equal(f[POS][...], st.io.open(out).x[:])


# -- bit flips ----------------------------------------------------------------------------------------------
def test_a_flipped_bit_in_a_committed_frame_is_refused_naming_file_dataset_and_frames(tmp_path, capsys):
    out = tmp_path / "f.h5"
    st.simulate(st.OrnsteinUhlenbeck(1.0, 0.5, dim=2), np.zeros((8, 2)), t1=1.0, dt=0.01, save_every=2, seed=3,
                out=out, chunk_frames=4, progress=False)
    good = st.io.open(out).x[:]
    flip_bit(out, POS, (10, 0, 0))  # chunk of frames 8-11
    with h5py.File(out, "r") as f, pytest.raises(OSError):
        f[POS][...]  # plain h5py sees it too: the checksum is HDF5's own filter
    run = st.io.open(out)  # the metadata and the other datasets are fine
    np.testing.assert_array_equal(run.x[:8], good[:8])
    np.testing.assert_array_equal(run.x[12:], good[12:])
    with pytest.raises(ChecksumError) as info:
        run.x[:]
    err = info.value
    assert err.dataset == "/particles/all/position/value" and err.ranges == [(8, 11)]
    assert str(out) in str(err) and "8-11" in str(err) and "checksum" in str(err)
    with pytest.raises(ChecksumError, match="8-11"):
        run.x[9]
    with pytest.raises(ChecksumError):
        st.Trajectory.from_file(out)
    before = out.read_bytes()
    with pytest.raises(ChecksumError):
        st.io.export(out, "npz", tmp_path / "f.npz")
    assert not (tmp_path / "f.npz").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]
    assert cli.main(["inspect", str(out)]) == 4
    err_text = capsys.readouterr().err
    assert "/particles/all/position/value rows 8-11 fail their checksum" in err_text and "Traceback" not in err_text
    assert cli.main(["inspect", "--force", str(out)]) == 0
    assert "FAILED" in capsys.readouterr().out
    assert out.read_bytes() == before


@pytest.mark.parametrize("where", ["frame", "checkpoint"])
def test_a_flipped_bit_in_a_stopped_run_is_refused_by_resume(tmp_path, crashed, where):
    part0, ref = crashed
    out, part = _copy(part0, tmp_path)
    with h5py.File(part, "r") as f:
        n, step, slot = (int(v) for v in f[RUN]["commit"][...])
    if where == "frame":
        flip_bit(part, POS, (n // 2, 0, 0))
        name = "/particles/all/position/value"
    else:
        flip_bit(part, STATE, (slot, 0, 0))
        name = "/parameters/sde_toolkit/checkpoint/state"
    before = part.read_bytes()
    with pytest.raises(ChecksumError) as info:
        st.resume(out, progress=False)
    assert info.value.dataset == name and str(part) in str(info.value)
    assert ("checkpoint slot" if where == "checkpoint" else "rows") in str(info.value)
    assert part.read_bytes() == before and not out.exists()  # refused before anything was written
    assert cli.main(["resume", str(out), "--no-progress"]) == 4


# -- edited provenance --------------------------------------------------------------------------------------
def _edit_json(g, key, path, value):
    d = json.loads(g.attrs[key])
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    g.attrs[key] = json.dumps(d, sort_keys=True)


EDITS = {
    "seed": (lambda g: g.attrs.__setitem__("seed", "22"), "seed", "seed"),
    "plan.seed": (lambda g: _edit_json(g, "plan", ["seed", "entropy"], "22"), "plan", "plan.seed.entropy changed"),
    "config.sde.kT": (lambda g: _edit_json(g, "config", ["sde", "kT"], 0.9), "config", "config.sde.kT changed"),
    "noise_scheme": (lambda g: g.attrs.__setitem__("noise_scheme", "pcg64-chunk4096-block256-v1"), "noise_scheme",
                     "noise_scheme"),
    "sde_config": (lambda g: _edit_json(g, "sde_config", ["kT"], 0.9), "sde_config", "sde_config.kT changed"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_provenance_is_refused_naming_what_differs_and_force_records_it(tmp_path, crashed, edit):
    part0, ref = crashed
    out, part = _copy(part0, tmp_path)
    fn, part_name, detail = EDITS[edit]
    with h5py.File(part, "r+") as f:
        fn(f[RUN])
    before = part.read_bytes()
    for call in (lambda: _quiet_open(out, allow_partial=True), lambda: st.resume(out, progress=False)):
        with pytest.raises(IntegrityError) as info:
            call()
        assert part_name in info.value.parts and detail in str(info.value) and str(part) in str(info.value)
        assert "force" in str(info.value)
    assert part.read_bytes() == before and not out.exists()
    assert cli.main(["resume", str(out), "--no-progress"]) == 4
    with pytest.warns(IntegrityWarning, match="force=True"):
        run = _quiet_open(out, allow_partial=True, force=True)
    assert run.integrity.parts == [part_name]
    with pytest.warns(IntegrityWarning):
        traj = st.resume(out, progress=False, force=True)
    assert traj.meta["status"] == "complete" and out.exists() and not part.exists()
    with h5py.File(out, "r") as f:
        log = json.loads(f[RUN].attrs["integrity_log"])
    assert len(log) == 1 and log[0]["action"] == "resume --force" and log[0]["parts"] == [part_name]
    assert {"user", "time", "host", "pid", "problems"} <= set(log[0]) and detail in log[0]["problems"][0]
    # the forced continuation stays visible, and the file is sealed again: it opens (with the warning) ...
    with pytest.warns(IntegrityWarning, match="continued with force=True"):
        run = st.io.open(out)
    assert run.integrity.ok
    # ... and a later edit is seen again
    with h5py.File(out, "r+") as f:
        f[RUN].attrs["seed"] = "99"
    with pytest.warns(IntegrityWarning), pytest.raises(IntegrityError, match="seed"):
        st.io.open(out)


def test_kT_edit_of_a_python_run_is_refused_when_resuming_with_the_recorded_sde(tmp_path):
    """A run from Python records its SDE's registry config; passing a different SDE to resume is refused."""
    sde = st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.7)
    x0 = np.zeros((8, 1))
    out = tmp_path / "p.h5"
    kw = dict(t1=1.0, dt=0.01, seed=2, driver="batched", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        orig = H5MDWriter.commit
        mp.setattr(H5MDWriter, "commit", lambda self, s, x: (_ for _ in ()).throw(RuntimeError("crash"))
                   if s > 50 else orig(self, s, x))
        with pytest.raises(RuntimeError):
            st.simulate(sde, x0, out=out, flush_interval=0, **kw)
    with pytest.raises(IntegrityError, match="not the one"):
        st.resume(out, sde=st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.9), progress=False)
    traj = st.resume(out, sde=st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.7), progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), st.simulate(sde, x0, **kw).x)


# -- edited status and commit record ------------------------------------------------------------------------
def test_a_partial_run_edited_to_complete_is_refused(tmp_path, crashed):
    part0, _ = crashed
    out, part = _copy(part0, tmp_path)
    with h5py.File(part, "r+") as f:
        f[RUN].attrs["status"] = "complete"
    with pytest.raises(IntegrityError) as info:
        st.io.open(out)
    msg = str(info.value)
    assert "complete" in msg and "commit record" in msg and "status" in info.value.parts
    assert cli.main(["inspect", str(out)]) == 4
    # and a complete file whose commit record was cut is refused too (the status digest covers the record)
    full = tmp_path / "full.h5"
    st.simulate(st.OrnsteinUhlenbeck(1.0, 0.5), np.zeros((4, 1)), t1=0.5, dt=0.01, seed=1, out=full, progress=False)
    with h5py.File(full, "r+") as f:
        f[RUN]["commit"][0] = 10
        f[RUN].attrs["n_frames_expected"] = 10
    with pytest.raises(IntegrityError, match="commit record"):
        st.io.open(full)


def test_an_edited_checkpoint_slot_is_refused_and_force_continues_and_records_it(tmp_path, crashed, capsys):
    part0, _ = crashed
    out, part = _copy(part0, tmp_path)
    with h5py.File(part, "r+") as f:
        rec = f[RUN]["commit"][...]
        rec[2] = 1 - rec[2]
        f[RUN]["commit"][...] = rec
    with pytest.raises(IntegrityError, match="checkpoint slot"):
        st.resume(out, progress=False)
    assert cli.main(["resume", str(out), "--no-progress"]) == 4
    assert "checkpoint slot" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrityWarning)
        assert cli.main(["resume", "--force", str(out), "--no-progress"]) == 0
    with h5py.File(out, "r") as f:
        log = json.loads(f[RUN].attrs["integrity_log"])
    assert log[0]["parts"] == ["status or commit record"]


def test_an_untouched_stopped_run_resumes_bit_identical(tmp_path, crashed):
    """The control of the tests above: the same copy, not edited, resumes to the unbroken run."""
    part0, ref = crashed
    out, part = _copy(part0, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)  # a verified file resumes without any warning
        traj = st.resume(out, progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)
    assert st.io.open(out).integrity.ok


# -- files of earlier versions ------------------------------------------------------------------------------
def test_files_without_digests_still_open_with_a_warning(tmp_path, crashed):
    with pytest.warns(IntegrityWarning, match="no digest"):
        run = st.io.open(GOLDEN)
    assert run.integrity.legacy and run.status == "complete"
    with pytest.warns(IntegrityWarning, match="no digest"):
        st.Trajectory.from_file(GOLDEN)
    # a stopped run written before the digests existed still resumes (and is not sealed behind the user's back)
    part0, ref = crashed
    out, part = _copy(part0, tmp_path)
    with h5py.File(part, "r+") as f:
        for k in ("digest", "digest_parts", "digest_leaves", "digest_algorithm", "status_digest"):
            del f[RUN].attrs[k]
        f[RUN].attrs["format_version"] = np.int32(1)
    with pytest.warns(IntegrityWarning, match="no digest"):
        traj = st.resume(out, progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)
    with h5py.File(out, "r") as f:
        assert "digest" not in f[RUN].attrs
    # but digests removed from a format-2 file are a failed check, not an old file
    (tmp_path / "x").mkdir()
    out2, part2 = _copy(part0, tmp_path / "x")
    with h5py.File(part2, "r+") as f:
        del f[RUN].attrs["digest"]
    with pytest.raises(IntegrityError, match="removed"):
        st.io.open(out2, allow_partial=True)


# -- chains and densities -----------------------------------------------------------------------------------
def test_chains_files_are_verified_too(tmp_path):
    c = st.mcmc.langevin(st.potentials.Harmonic(), np.zeros((16, 2)), step=0.1, n_steps=60, burn_in=10, thin=2,
                         method="ula", seed=4)
    path = tmp_path / "c.h5"
    c.to_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)
        st.mcmc.Chains.from_file(path)
    edited = tmp_path / "k.h5"
    shutil.copy(path, edited)
    with h5py.File(edited, "r+") as f:
        f["mcmc"].attrs["kT"] = 2.0
    with pytest.raises(IntegrityError, match=r"parameters\.kT changed"):
        st.io.read_chains(edited)
    with pytest.warns(IntegrityWarning):
        assert st.io.read_chains(edited, force=True).kT == 2.0
    stat = tmp_path / "s.h5"
    shutil.copy(path, stat)
    with h5py.File(stat, "r+") as f:
        f["mcmc/n_committed"][()] = 5
    with pytest.raises(IntegrityError, match="n_committed"):
        st.io.open_chains(stat)
    flipped = tmp_path / "b.h5"
    shutil.copy(path, flipped)
    flip_bit(flipped, "particles/chains/position/value", (3, 0, 0))
    with pytest.raises(ChecksumError, match="/particles/chains/position/value"):
        st.mcmc.Chains.from_file(flipped)
    info = st.io.summarize(flipped)
    assert info["checksums"]["bad"][0]["dataset"] == "/particles/chains/position/value"


def test_density_files_carry_checksums(tmp_path):
    g = st.Grid(-2, 2, 16)
    res = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), g).evolve(g.gaussian(0, 0.5), t1=0.3, dt=0.1)
    path = tmp_path / "d.h5"
    res.to_file(path)
    with h5py.File(path, "r") as f:
        assert f["fokker_planck/p"].fletcher32 and f["fokker_planck/t"].fletcher32
    flip_bit(path, "fokker_planck/p", (1, 0))
    with pytest.raises(ChecksumError, match=r"/fokker_planck/p frames 1"):
        st.fokker_planck.read_density(path)
