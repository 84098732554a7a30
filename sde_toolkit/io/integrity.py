"""Verified files: provenance digests, status digests, and the errors and warnings of a failed check.

What the file family verifies (the reference is ``docs/file-format.md``; the trust model is ``docs/security.md``):

* **Provenance digest.** When a file is created, the writer computes the SHA-256 of the *canonical JSON*
  (:func:`canonical_json`: keys sorted, no whitespace, ASCII) of the run's provenance parts (for a trajectory:
  ``config``, ``plan``, ``seed``, ``noise_scheme``, ``sde_config``), read back from the attributes it has just
  stored. It stores that digest (``digest``), the digest of each part (``digest_parts``) and a short digest of
  each leaf of the dict parts (``digest_leaves``, 16 hex digits per dotted path such as ``config.sde.kT``). A
  reader recomputes them from the attributes it finds: a mismatch names the part and the leaf that changed.
* **Status digest.** ``status_digest`` is a JSON pair ``[current, previous]`` of SHA-256 digests over the
  provenance digest, the status, the commit record and the expected size. The writer stores the pair (and
  flushes) *before* it changes the record or the status, so a file killed between the two still matches one of
  the pair; an edited status or commit record (``complete`` on a partial file, another checkpoint slot) matches
  neither.
* **Checksums.** Every chunked dataset of committed data carries HDF5's fletcher32 filter; a flipped bit makes
  the read fail, which readers report as :class:`ChecksumError` (file, dataset, frames).

These checks detect corruption and accidental or careless edits. They are not signatures: someone who edits a
file on purpose can recompute the digests (nothing here is secret).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["IntegrityError", "ChecksumError", "IntegrityWarning", "IntegrityReport", "canonical_json",
           "sha256_hex", "seal_attrs", "check_provenance", "status_digest", "DIGEST_ALGORITHM"]

DIGEST_ALGORITHM = "sha256-canonical-json-v1"
DIGEST_PREFIX = "sha256:"
LEAF_HEX = 16  # hex digits kept per leaf digest (they localise a change; the part digests verify it)
PROVENANCE_ATTRS = ("digest", "digest_parts", "digest_leaves", "digest_algorithm")


class IntegrityError(ValueError):
    """A file failed verification: its provenance, status or data is not what its writer recorded.

    Attributes: ``path``, ``parts`` (what differs: ``"config"``, ``"plan"``, ``"seed"``, ``"status"``,
    ``"commit record"``, a dataset name, ...), ``problems`` (one sentence each). ``force=True`` (CLI
    ``--force``) continues anyway and records that it did.
    """

    def __init__(self, path, problems: Sequence[str], parts: Sequence[str] = (), hint: str | None = None):
        self.path = str(path)
        self.problems = list(problems)
        self.parts = list(parts)
        tail = hint if hint is not None else ("; pass force=True (CLI: --force) to continue anyway, which is "
                                              "recorded in the file")
        super().__init__(f"{self.path} failed verification: " + "; ".join(self.problems) + tail)


class ChecksumError(IntegrityError):
    """Committed data fails its fletcher32 checksum (or cannot be read back): the bytes on disk changed after
    they were written. Attributes: ``path``, ``dataset``, ``ranges`` (``[(first, last), ...]`` frames or rows
    that fail), ``cause`` (HDF5's message)."""

    def __init__(self, path, dataset: str, ranges: Sequence[tuple[int, int]], cause: str = "", unit: str = "frames"):
        self.dataset = dataset
        self.ranges = [(int(a), int(b)) for a, b in ranges]
        self.cause = cause
        where = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in self.ranges) or "unknown"
        msg = (f"{dataset} {unit} {where} fail their checksum (the bytes on disk changed after they were "
               "written: disk, memory or transfer corruption, or an edit); these frames cannot be trusted")
        if cause:
            msg += f" (HDF5: {cause.splitlines()[0][:200]})"
        super().__init__(path, [msg], [dataset], hint="")


class IntegrityWarning(UserWarning):
    """A file that cannot be fully verified (written by an earlier version without digests), or that was
    continued or read with ``force=True`` after a failed check."""


def canonical_json(obj: Any) -> str:
    """The canonical JSON text that digests are computed over: keys sorted, no whitespace, ASCII only
    (``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``; floats as Python's
    shortest round-trip repr, ``NaN``/``Infinity`` as Python writes them)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _leaves(prefix: str, obj: Any, out: dict) -> None:
    if isinstance(obj, Mapping) and obj:
        for k in obj:
            _leaves(f"{prefix}.{k}", obj[k], out)
    else:
        out[prefix] = sha256_hex(canonical_json([prefix, obj]))[:LEAF_HEX]


def seal_attrs(parts: Mapping[str, Any]) -> dict[str, str]:
    """The provenance attributes of ``parts`` (name -> JSON-able value): ``digest`` (``"sha256:<hex>"`` of the
    canonical JSON of the whole dict), ``digest_parts`` and ``digest_leaves`` (canonical JSON dicts), and
    ``digest_algorithm``."""
    leaves: dict[str, str] = {}
    for name, value in parts.items():
        _leaves(name, value, leaves)
    return {
        "digest": DIGEST_PREFIX + sha256_hex(canonical_json(dict(parts))),
        "digest_parts": canonical_json({k: sha256_hex(canonical_json(v)) for k, v in parts.items()}),
        "digest_leaves": canonical_json(leaves),
        "digest_algorithm": DIGEST_ALGORITHM,
    }


def status_digest(provenance: str, status: str, record: Sequence[int], expected: int) -> str:
    """SHA-256 over the provenance digest, the status, the commit record and the expected size."""
    return sha256_hex(canonical_json({"digest": str(provenance), "status": str(status),
                                      "record": [int(v) for v in record], "expected": int(expected)}))


@dataclass
class IntegrityReport:
    """What a reader found: ``legacy`` (no digests: written by an earlier version), ``problems`` and ``parts``
    (empty when everything matches), ``overrides`` (earlier ``force=True`` continuations recorded in the file)."""

    path: str
    legacy: bool = False
    problems: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    overrides: list[dict] = field(default_factory=list)
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, part: str, problem: str) -> None:
        if part not in self.parts:
            self.parts.append(part)
        self.problems.append(problem)

    def error(self) -> IntegrityError:
        return IntegrityError(self.path, self.problems, self.parts)

    def as_dict(self) -> dict:
        return {"verified": "legacy (no digest)" if self.legacy else ("ok" if self.ok else "FAILED"),
                "digest": self.digest, "problems": list(self.problems), "parts": list(self.parts),
                "overrides": list(self.overrides)}


def _loads(text, default=None):
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def check_provenance(report: IntegrityReport, attrs: Mapping[str, Any], parts: Mapping[str, Any]) -> None:
    """Compare ``parts`` (recomputed from the file's attributes) with the stored digests; add what differs."""
    stored = attrs.get("digest")
    report.digest = None if stored is None else str(stored)
    fresh = seal_attrs(parts)
    if fresh["digest"] == stored:
        return
    old_parts = _loads(attrs.get("digest_parts"), {}) or {}
    new_parts = _loads(fresh["digest_parts"], {})
    old_leaves = _loads(attrs.get("digest_leaves"), {}) or {}
    new_leaves = _loads(fresh["digest_leaves"], {})
    found = False
    for name in sorted(set(old_parts) | set(new_parts)):
        if old_parts.get(name) == new_parts.get(name):
            continue
        found = True
        if name not in new_parts:
            report.add(name, f"{name} was removed since the file was created")
            continue
        if name not in old_parts:
            report.add(name, f"{name} was added since the file was created")
            continue
        pre = name + "."
        keys = {k for k in (set(old_leaves) | set(new_leaves)) if k == name or k.startswith(pre)}
        changed = sorted(k for k in keys if k in old_leaves and k in new_leaves and old_leaves[k] != new_leaves[k])
        added = sorted(k for k in keys if k not in old_leaves)
        removed = sorted(k for k in keys if k not in new_leaves)
        what = ([f"{k} changed" for k in changed] + [f"{k} added" for k in added]
                + [f"{k} removed" for k in removed])
        detail = f" ({', '.join(what[:8])}{', ...' if len(what) > 8 else ''})" if what and what != [f"{name} changed"] else ""
        report.add(name, f"{name} differs from what was recorded when the file was created{detail}")
    if not found:
        report.add("digest", "the stored provenance digest itself was changed (digest, digest_parts)")


def override_entry(action: str, report: IntegrityReport) -> dict:
    """The record of a ``force=True`` continuation: who, when, where, what differed."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    return {"action": action, "user": user, "host": socket.gethostname(), "pid": os.getpid(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "parts": list(report.parts),
            "problems": list(report.problems)}


def overrides_of(attrs: Mapping[str, Any]) -> list[dict]:
    return list(_loads(attrs.get("integrity_log"), []) or [])
