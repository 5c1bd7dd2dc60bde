"""Differential test: random small clusters through our scheduler and the upstream kube-scheduler on
one real apiserver, pod by pod (`tests/parity.py` says what is compared and how the two are kept in
lockstep). CI runs a short seeded slice; `scripts/parity.sh --examples N` runs longer.

Environment: PARITY_EXAMPLES (cases, default 10), PARITY_SEED (first seed, default 0),
PARITY_PARTITIONS (our scheduler's partitions, default 2), PARITY_OUT (where replay workloads of
mismatches go, default the test's tmp dir)."""

from __future__ import annotations

import os
from pathlib import Path

from cluster_scheduler.controlplane.controllers import BENCH_VOLUME_ARGS, VOLUME_CONTROLLERS, start_controller_manager
from cluster_scheduler.controlplane.peer import start_kube_scheduler
from tests.parity import CASE_LABEL, POOL, Lockstep, Tally, generate, our_config, profile_docs
from tests.provisioner import Provisioner


def test_parity_with_kube_scheduler(private_cp, admin, run_scheduler, tmp_path):
    examples = int(os.environ.get("PARITY_EXAMPLES", "10"))
    first = int(os.environ.get("PARITY_SEED", "0"))
    out = Path(os.environ.get("PARITY_OUT") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    run_scheduler(int(os.environ.get("PARITY_PARTITIONS", "2")), profiles=our_config())
    peer = start_kube_scheduler(private_cp, profiles=profile_docs(kube=True))
    # the PV controller: completes the volume bindings both schedulers' PreBind write
    kcm = start_controller_manager(private_cp, VOLUME_CONTROLLERS, extra_args=BENCH_VOLUME_ARGS)
    provisioner = Provisioner(admin, POOL, poll_s=0.1, labels={CASE_LABEL: "provisioned"}).start()
    try:
        lockstep = Lockstep(admin, out)
        tally = Tally()
        for seed in range(first, first + examples):
            lockstep.run(generate(seed), tally)
    finally:
        provisioner.stop()
        kcm.stop()
        peer.stop()
    print(f"parity: {tally.cases} cases, {tally.pods} pods ({tally.bound} bound, {tally.preempting} of them by "
          f"preempting ({tally.pdb_limited} past a PDB), {tally.unschedulable} unschedulable by kube-scheduler; {tally.with_volumes} mounting claims, {tally.volumes_bound} of them bound, {len(provisioner.provisioned)} "
          f"volumes provisioned), "
          f"{tally.with_disks} with an inline disk ({tally.disks_bound} bound), {tally.gangs} gangs ({tally.gangs_placed} placed by kube-scheduler, {tally.gangs_zoned} kept to a zone), "
          f"{len(tally.mismatches)} mismatches; cases per profile {tally.profiles}; nodes refused for a volume "
          f"reason {tally.volume_reasons}")
    assert tally.bound and tally.unschedulable, "the generator should make both outcomes"
    assert examples < 10 or tally.with_volumes, "the generator should make pods with claims"
    assert examples < 10 or tally.gangs, "the generator should make gangs"
    assert examples < 10 or tally.with_disks, "the generator should make pods with inline disks"
    assert not tally.mismatches, "\n\n".join(str(m) for m in tally.mismatches)
