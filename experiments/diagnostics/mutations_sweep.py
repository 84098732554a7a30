"""Mutation check of the sweep tests (issue 11): the machinery of ``mutations.py`` with the sweep's own bugs.

    python experiments/diagnostics/mutations_sweep.py [--only ID[,ID...]]

Kept apart from the main list so that the sweep's entries do not collide with other edits of it; the rows go
to ``docs/testing.md`` ("Sweeps on Dask (issue 11)").
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import Mutation, cli  # noqa: E402

T = "tests/runs/test_sweep.py"
T_SHARD = T + "::test_shards_are_blocks_of_one_run_and_vds_survives_a_move"
T_WORK = T + "::test_workers_1_and_2_identical_replicas_differ_rerun_skips"
SWEEP = "sde_toolkit/runs/sweep.py"

MUTATIONS = [
    Mutation("sweep-vds-col", "virtual dataset: a block placed at its replica's column 0 (path start dropped)",
             "sde_toolkit/io/sweep_index.py", "col = int(r) * n + int(a)", "col = int(r) * n", (T_SHARD,)),
    Mutation("sweep-offset", "shard noise without its path offset (every block draws paths 0..n_b)", SWEEP,
             "path_offset=shard.start)", "path_offset=0)", (T_SHARD,)),
    Mutation("sweep-x0-rows", "shard initial states: the first n_b rows of x0 instead of its block's rows", SWEEP,
             "[shard.start:shard.start + shard.n]", "[:shard.n]", (T_SHARD,)),
    Mutation("sweep-replica-seed", "replica seed without the replica index (replicas repeat each other)", SWEEP,
             "root.child(SWEEP_STREAM, i, r)", "root.child(SWEEP_STREAM, i, 0)", (T_WORK,)),
    Mutation("sweep-combine", "pooled variance: the between-shard term with nb/(n+nb) for n nb/(n+nb)", SWEEP,
             "m2 = m2 + qb + delta**2 * (n * nb / tot)", "m2 = m2 + qb + delta**2 * (nb / tot)", (T_SHARD,)),
]


def main() -> int:
    return cli(MUTATIONS, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
