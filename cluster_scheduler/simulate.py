"""`cluster-scheduler simulate WORKLOAD`: run a workload through the engine, no apiserver.

Users plan capacity with it; tests use it. It follows the workload's ops in order (nodes appear,
pods are created, barriers schedule what is pending), places pods as the scheduler would (priority
first, then creation order, retrying unschedulable pods while placements still happen, as the
queue does on cluster events), then runs the independent placement check over the result.

Gangs (pods naming a gang PodGroup in `spec.schedulingGroup.podGroupName`) are placed all or
nothing, in the queue position of their first member (`Engine.schedule_gang`); a gang waits while
its PodGroup is missing or fewer than minCount members exist, and once it is placed, members that
did not fit are scheduled one by one. createObjects ops feed Namespace labels, PodGroups and
PodDisruptionBudgets (with the status they are given); other kinds do not change a placement here.

Volumes: StorageClasses, PersistentVolumes and claims come from createObjects and from the
claim/volume templates of createPods. `VolumeControl` plays the parts a cluster has for them: the
PersistentVolume controller (it binds pre-bound volumes and Immediate claims, and completes a
binding the scheduler chose) and a provisioner (a volume of the claim's size on the chosen node,
pinned to it by its hostname). A pod placed with an unbound WaitForFirstConsumer claim gets the
volume the engine promised it at once, as the scheduler's PreBind and the controller would.

A pod that fits nowhere may preempt (`preemption.Preemption`, upstream's DefaultPreemption): at
its turn in the queue, its victims are deleted at once (no kubelet, no grace period here) and it
is placed on the node chosen; pods after it see that. Victims are reported as preempted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass, field

import orjson

from .config import Profile, load_config
from .engine import (Engine, PodResult, gang_unfit_message, gang_waiting_message, pod_group_invalid_message,
                     pod_group_missing_message)
from .gc_tuning import freeze_loaded_state
from .model.csi_translation import provisioner_driver
from .model.parse import BIND_COMPLETED, parse_claim, parse_node, parse_pdb, parse_pod, parse_pod_group, parse_volume
from .model.storage import API_KINDS, CAPACITIES, CLAIMS, CSI_NODES, VOLUMES
from .model.types import Gang, PodInfo
from .preemption import Preemption
from .workload import (Barrier, Churn, CreateNodes, CreateObjects, CreatePods, DeletePods, UpdateObjects, Workload,
                       WorkloadError, load_workload)

SIM_SCHEDULER = "cluster-scheduler"


@dataclass
class SimResult:
    workload: str
    nodes: int = 0
    pods: int = 0
    bound: int = 0
    unschedulable: int = 0
    preempted: int = 0
    preemptions: dict[str, tuple[str, str]] = field(default_factory=dict)  # victim uid -> (preemptor uid, node)
    schedule_seconds: float = 0.0
    schedule_cpu_seconds: float = 0.0  # process CPU time in the engine: the one-core figure
    parse_seconds: float = 0.0
    peak_mib: float = 0.0
    messages: dict[str, str] = field(default_factory=dict)  # uid -> why unschedulable
    node_dicts: list[dict] = field(default_factory=list)
    pod_dicts: list[dict] = field(default_factory=list)
    pod_group_dicts: list[dict] = field(default_factory=list)
    victim_dicts: list[dict] = field(default_factory=list)  # preempted pods as they were when evicted
    volume_dicts: list[dict] | None = None  # PersistentVolumes and claims at the end (None: the
    claim_dicts: list[dict] | None = None  # workload has none)
    csi_node_dicts: list[dict] | None = None
    check_summary: str = ""
    check_ok: bool | None = None

    @property
    def pods_per_second(self) -> float:
        return self.bound / self.schedule_seconds if self.schedule_seconds else 0.0

    @property
    def pods_per_cpu_second(self) -> float:
        return self.bound / self.schedule_cpu_seconds if self.schedule_cpu_seconds else 0.0


class VolumeControl:
    """The volume side of a cluster, in memory: the PersistentVolume controller's binding and a
    provisioner (see the module docstring). It keeps the objects as dicts for the placement check
    and feeds every change to the engine's storage index."""

    def __init__(self, engine: Engine) -> None:
        self.storage = engine.storage
        self.engine = engine
        self.volumes: dict[str, dict] = {}
        self.claims: dict[tuple[str, str], dict] = {}
        self.csi_nodes: list[dict] = []  # for the placement check's attach limits
        self.uids = 0

    def add(self, obj: dict) -> None:
        """A storage manifest (one of `API_KINDS`)."""
        kind = API_KINDS[(obj.get("apiVersion"), obj.get("kind"))]
        meta = obj.setdefault("metadata", {})
        if kind == CSI_NODES:
            self.csi_nodes.append(obj)
        if kind == CAPACITIES:  # as published; no driver here updates it as volumes are made
            meta.setdefault("namespace", "default")
        if kind not in (VOLUMES, CLAIMS):
            self.storage.apply(kind, obj)
            return
        if kind == VOLUMES:
            obj.setdefault("status", {}).setdefault("phase", "Available")
            self.volumes[meta.get("name", "")] = obj
            self.storage.set_volume(parse_volume(obj))
            if (obj.get("spec") or {}).get("claimRef"):
                self._bind_prebound(obj)
            return
        self.uids += 1
        meta.setdefault("uid", f"claim-{self.uids}")
        meta.setdefault("namespace", "default")
        key = (meta["namespace"], meta.get("name", ""))
        self.claims[key] = obj
        self.storage.set_claim(parse_claim(obj))
        self._bind_claim(key)

    def _bind(self, pv: dict, claim: dict) -> None:
        cm = claim["metadata"]
        pv.setdefault("spec", {})["claimRef"] = {"namespace": cm["namespace"], "name": cm["name"], "uid": cm["uid"]}
        pv.setdefault("status", {})["phase"] = "Bound"
        claim.setdefault("spec", {})["volumeName"] = pv["metadata"]["name"]
        cm.setdefault("annotations", {})[BIND_COMPLETED] = "yes"
        claim["status"] = {"phase": "Bound"}
        self.storage.set_volume(parse_volume(pv))
        self.storage.set_claim(parse_claim(claim))

    def _bind_prebound(self, pv: dict) -> None:
        ref = pv["spec"]["claimRef"]
        claim = self.claims.get((ref.get("namespace") or "default", ref.get("name", "")))
        if claim is not None and (claim.get("spec") or {}).get("volumeName") in (None, "", pv["metadata"]["name"]):
            self._bind(pv, claim)

    def _bind_claim(self, key: tuple[str, str]) -> None:
        """A new claim: pre-bound either way, or Immediate (bound now to the smallest matching
        volume, else provisioned without topology); WaitForFirstConsumer claims wait for a pod."""
        claim = self.claims[key]
        spec = claim.get("spec") or {}
        want = spec.get("volumeName")
        if want:
            pv = self.volumes.get(want)
            ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
            if pv is not None and (not ref or (ref.get("namespace"), ref.get("name")) == key):
                self._bind(pv, claim)
            return
        for name in sorted(self.storage.prebound.get(key, ())):  # a volume pre-bound to it
            self._bind(self.volumes[name], claim)
            return
        c = self.storage.claims[key]
        sc = self.storage.classes.get(c.storage_class)
        if c.error or sc is None or sc.binding_mode != "Immediate":
            return
        pre, cands = self.storage.candidates(c)
        pick = pre or (cands[0] if cands else None)
        if pick is not None:
            self._bind(self.volumes[pick.name], claim)
        elif sc.provisions:
            self._bind(self._provision(claim, None), claim)

    def _provision(self, claim: dict, node: str | None) -> dict:
        spec = claim.get("spec") or {}
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              "metadata": {"name": f"pvc-{claim['metadata']['uid']}"},
              "spec": {"capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")},
                       "accessModes": spec.get("accessModes") or [], "storageClassName": spec.get("storageClassName", ""),
                       "volumeMode": spec.get("volumeMode", "Filesystem")},
              "status": {"phase": "Available"}}
        sc = self.storage.classes.get(spec.get("storageClassName") or "")
        if sc is not None and sc.provisions:  # as a CSI driver would: its name and a handle of its own
            pv["spec"]["csi"] = {"driver": provisioner_driver(sc.provisioner) or sc.provisioner, "volumeHandle": pv["metadata"]["name"]}
        if node is not None:
            pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        self.volumes[pv["metadata"]["name"]] = pv
        return pv

    def placed(self, pod: PodInfo) -> None:
        """The pod was placed: bind what the engine promised its unbound claims on its node."""
        for ch in self.storage.chosen.get(pod.uid, ()):
            claim = self.claims.get(ch.claim)
            if claim is None or (claim.get("spec") or {}).get("volumeName"):
                continue
            pv = self.volumes[ch.volume] if ch.volume else self._provision(claim, ch.node)
            self._bind(pv, claim)


def pod_group_of(obj: dict) -> tuple[tuple[str, str], Gang]:
    g = parse_pod_group(obj)
    return (g.namespace, g.name), g


def _units(order: list[PodInfo], groups: dict[tuple[str, str], Gang],
           placed_groups: set[tuple[str, str]]) -> list[tuple[tuple[str, str] | None, list[PodInfo]]]:
    """The queue as units in order: runs of pods scheduled one by one (None), and whole gangs at
    the position of their first member (the later members of a gang kept to a topology domain
    too: they join it there)."""
    units: list[tuple[tuple[str, str] | None, list[PodInfo]]] = []
    gangs: dict[tuple[str, str], list[PodInfo]] = {}
    for pod in order:
        g = (pod.namespace, pod.pod_group) if pod.pod_group else None
        spec = groups.get(g) if g is not None else None
        if g is not None and (g not in placed_groups or spec is not None and spec.topology_key):
            if spec is None or spec.together:  # a gang (or a group kept to a domain), or one yet unknown
                if g not in gangs:
                    gangs[g] = []
                    units.append((g, gangs[g]))
                gangs[g].append(pod)
                continue
        if not units or units[-1][0] is not None:
            units.append((None, []))
        units[-1][1].append(pod)
    return units


def _schedule_pending(engine: Engine, pending: list[PodInfo], res: SimResult,
                      groups: dict[tuple[str, str], Gang] | None = None,
                      placed_groups: set[tuple[str, str]] | None = None,
                      preemption: Preemption | None = None,
                      volumes: VolumeControl | None = None) -> list[PodInfo]:
    """Schedule until no progress; returns the pods left unschedulable (with their messages)."""
    groups = groups if groups is not None else {}
    placed_groups = placed_groups if placed_groups is not None else set()
    refused = _refused_groups(engine, pending, groups, res)
    if refused:
        pending = [p for p in pending if p.uid not in refused]
    order = sorted(pending, key=lambda p: -p.priority)  # stable: creation order within a priority
    freeze_loaded_state()
    while order:
        failed: list[PodInfo] = []
        progress = False
        for g, pods in _units(order, groups, placed_groups):
            if g is None:
                progress |= _place(engine, pods, res, failed, preemption, volumes)
                continue
            spec = groups.get(g)
            if spec is None:
                for pod in pods:
                    failed.append(pod)
                    res.messages[pod.uid] = pod_group_missing_message(*g)
                continue
            standing = g in placed_groups  # (members joining a gang kept to a topology domain)
            need = 0 if standing else spec.required
            if len(pods) < need:
                for pod in pods:
                    failed.append(pod)
                    res.messages[pod.uid] = gang_waiting_message(g[1], spec.required)
                continue
            on = [p.node_name for p in engine.pods.values()
                  if p.pod_group == g[1] and p.namespace == g[0] and p.node_name] if standing else []
            t0, c0 = time.perf_counter(), time.process_time()
            results, ok = engine.schedule_gang(pods, need, topology_key=spec.topology_key, placed_nodes=on)
            res.schedule_seconds += time.perf_counter() - t0
            res.schedule_cpu_seconds += time.process_time() - c0
            fits = sum(1 for r in results if r.candidates)
            if not ok and preemption is not None:
                gc = preemption.preempt_gang(pods, spec.required, spec.topology_key, on, spec.priority)
                if gc is not None:  # the gang preempts as one: victims go, its members are placed
                    by_node = {node: p for p, node in gc.assignments}
                    for v in gc.victims:
                        engine.remove_pod(v.uid)
                        res.preemptions[v.uid] = (by_node.get(v.node_name, gc.assignments[0][0]).uid, v.node_name)
                    res.preempted += len(gc.victims)
                    res.bound -= len(gc.victims)  # counted when they were bound; the members below
                    placed_uids = set()
                    for p, node in gc.assignments:
                        engine.assume(p, node)
                        placed_uids.add(p.uid)
                        if volumes is not None and p.claims:
                            volumes.placed(p)
                    results = [PodResult(p.uid, [(p.node_name, 0)]) if p.uid in placed_uids else r
                               for p, r in zip(pods, results)]
                    ok = True
            if ok:
                placed_groups.add(g)
                progress = progress or fits > 0
            why = next((r.message() for r in results if not r.candidates), "")
            for pod, r in zip(pods, results):
                if ok and r.candidates:
                    res.bound += 1
                    if volumes is not None and pod.claims:
                        volumes.placed(pod)
                    continue
                failed.append(pod)
                res.messages[pod.uid] = (r.message() if ok else
                                         gang_unfit_message(why, g[1], spec.required, fits))
        if not progress:  # nothing that failed can fit now
            return failed + list(refused.values())
        order = failed
    return list(refused.values())


def _refused_groups(engine: Engine, pending: list[PodInfo], groups: dict[tuple[str, str], Gang],
                    res: SimResult) -> dict[str, PodInfo]:
    """The pending pods of groups upstream refuses before scheduling them (validatePodGroup:
    every pod, placed ones too, at the PodGroup's priority, with one preemption policy), each
    given the reason."""
    by_group: dict[tuple[str, str], list[PodInfo]] = {}
    for p in pending:
        if p.pod_group and (p.namespace, p.pod_group) in groups:
            by_group.setdefault((p.namespace, p.pod_group), []).append(p)
    if not by_group:
        return {}
    placed: dict[tuple[str, str], list[PodInfo]] = {}
    for q in engine.pods.values():
        if q.pod_group and q.node_name and (q.namespace, q.pod_group) in by_group:
            placed.setdefault((q.namespace, q.pod_group), []).append(q)
    refused: dict[str, PodInfo] = {}
    for key, pods in by_group.items():
        why = pod_group_invalid_message(pods + placed.get(key, []), groups[key].priority)
        if why:
            for p in pods:
                refused[p.uid] = p
                res.messages[p.uid] = why
    return refused


def _place(engine: Engine, pods: list[PodInfo], res: SimResult, failed: list[PodInfo],
           preemption: Preemption | None = None, volumes: VolumeControl | None = None) -> bool:
    """Pods one by one (a batch of the engine); True if any was placed. A pod that fits nowhere
    and may preempt stops the batch at its turn: the placements after it are undone, it preempts
    (or is told why it cannot), and the rest are scheduled again in the new state."""
    placed = False
    i = 0
    chunk = len(pods)  # after a preemption, the next pods go in chunks growing from 1, so that a
    # long run of preemptors is not rescheduled (and undone) after each one
    while i < len(pods):
        t0, c0 = time.perf_counter(), time.process_time()
        # the pods are in queue order (priority first), so those placed before a pod in this
        # chunk are never of lower priority: lower-priority pods at its turn are those placed now
        lowest = preemption.lowest_priority() if preemption is not None else None
        last = engine.table.last[:] if preemption is not None else []
        results: list[PodResult] = engine.schedule(pods[i:i + chunk], k=1, commit=True)
        stop = None
        if preemption is not None:
            stop = next((j for j, (p, r) in enumerate(zip(pods[i:], results))
                         if not r.candidates and preemption.may_preempt(p, lowest)), None)
            if stop is not None:
                engine.undo([p for p, r in zip(pods[i + stop + 1:i + chunk], results[stop + 1:])
                             if r.candidates], last)
        res.schedule_seconds += time.perf_counter() - t0
        res.schedule_cpu_seconds += time.process_time() - c0
        end = len(results) if stop is None else stop
        for pod, r in zip(pods[i:i + end], results[:end]):
            if r.candidates:
                res.bound += 1
                pod.node_name = r.candidates[0][0]
                placed = True
                if volumes is not None and pod.claims:
                    volumes.placed(pod)
            else:
                failed.append(pod)
                res.messages[pod.uid] = r.message() + (
                    " " + preemption.preempt(pod).message if preemption is not None and preemption.enabled(pod) else "")
        if stop is None:
            i += len(results)
            chunk *= 2
            continue
        chunk = 1
        pod, r = pods[i + stop], results[stop]
        t0, c0 = time.perf_counter(), time.process_time()
        out = preemption.preempt(pod)
        if out.candidate is not None:
            for v in out.candidate.victims:
                engine.remove_pod(v.uid)
                res.preemptions[v.uid] = (pod.uid, out.candidate.node)
            res.preempted += len(out.candidate.victims)
            res.bound -= len(out.candidate.victims)  # they were counted when they were bound
            engine.assume(pod, out.candidate.node)
            if volumes is not None and pod.claims:
                volumes.placed(pod)
            res.bound += 1
            placed = True
        else:
            failed.append(pod)
            res.messages[pod.uid] = f"{r.message()} {out.message}"
        res.schedule_seconds += time.perf_counter() - t0
        res.schedule_cpu_seconds += time.process_time() - c0
        i += stop + 1
    return placed


def simulate(workload: Workload, profile: Profile | None = None, keep_objects: bool = True,
             scheduler_name: str = SIM_SCHEDULER) -> SimResult:
    timed = sorted({type(op).__name__ for op in workload.ops if isinstance(op, (DeletePods, Churn, UpdateObjects))})
    if timed:
        raise WorkloadError(f"{workload.source or workload.name}: {', '.join(timed)} act on a live cluster "
                            "over time: only the load test runs them")
    engine = Engine(profile or Profile(scheduler_name=scheduler_name))
    res = SimResult(workload.name)
    pending: list[PodInfo] = []
    pod_by_uid: dict[str, dict] = {}
    groups: dict[tuple[str, str], Gang] = {}
    placed_groups: set[tuple[str, str]] = set()
    preemption = Preemption(engine)
    volumes = VolumeControl(engine)
    for op, start in workload.steps():
        if isinstance(op, CreateNodes):
            for nd in workload.iter_nodes(op, start):
                t0 = time.perf_counter()
                engine.set_node(parse_node(nd))
                res.parse_seconds += time.perf_counter() - t0
                res.nodes += 1
                if keep_objects:
                    res.node_dicts.append(nd)
            for csi_node in workload.iter_csi_nodes(op, start):
                volumes.add(csi_node)
        elif isinstance(op, CreateObjects):
            for obj in op.objects:
                if obj.get("kind") == "PodGroup" and str(obj.get("apiVersion", "")).startswith("scheduling.k8s.io/"):
                    key, gang = pod_group_of(obj)
                    groups[key] = gang
                    preemption.set_group(key, gang.priority, gang.disrupt_whole)
                    if keep_objects:
                        res.pod_group_dicts.append(obj)
                elif obj.get("kind") == "PodDisruptionBudget" and obj.get("apiVersion") == "policy/v1":
                    preemption.pdbs.append(parse_pdb(obj))
                elif (obj.get("apiVersion"), obj.get("kind")) in API_KINDS:
                    volumes.add(orjson.loads(orjson.dumps(obj)))
                elif obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
                    meta = obj.get("metadata") or {}
                    engine.set_namespace_labels(meta.get("name", ""), dict(meta.get("labels") or {}))
        elif isinstance(op, CreatePods):
            for obj in workload.iter_pod_groups(op):
                key, gang = pod_group_of(obj)
                groups[key] = gang
                preemption.set_group(key, gang.priority, gang.disrupt_whole)
                if keep_objects:
                    res.pod_group_dicts.append(obj)
            for pv, claim in workload.iter_volumes(op, start):
                volumes.add(claim)
                if pv is not None:
                    volumes.add(pv)
            for pd in workload.iter_pods(op, start, scheduler_name):
                pd.setdefault("metadata", {}).setdefault("uid", f"{pd['metadata'].get('namespace', 'default')}/{pd['metadata']['name']}")
                t0 = time.perf_counter()
                info = parse_pod(pd)
                res.parse_seconds += time.perf_counter() - t0
                pending.append(info)
                res.pods += 1
                if keep_objects:
                    pod_by_uid[info.uid] = pd
        elif isinstance(op, Barrier):
            pending = _schedule_pending(engine, pending, res, groups, placed_groups, preemption, volumes)
    pending = _schedule_pending(engine, pending, res, groups, placed_groups, preemption, volumes)
    res.unschedulable = len(pending)
    if volumes.volumes or volumes.claims:
        res.volume_dicts = list(volumes.volumes.values())
        res.claim_dicts = list(volumes.claims.values())
        res.csi_node_dicts = volumes.csi_nodes
    if keep_objects:
        for uid, pd in pod_by_uid.items():
            placed = engine.pods.get(uid)
            if uid in res.preemptions:  # deleted by the scheduler: not in the cluster any more
                pd.setdefault("spec", {})["nodeName"] = res.preemptions[uid][1]
                pd["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
                res.victim_dicts.append(pd)
                continue
            if placed is not None:
                pd.setdefault("spec", {})["nodeName"] = placed.node_name
                pd["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
            else:
                pd["status"] = {"phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": res.messages.get(uid, "")}]}
            res.pod_dicts.append(pd)
    return res


def run_check(res: SimResult, scheduler_name: str = SIM_SCHEDULER) -> None:
    from .check import check_placement

    by_uid = {pd["metadata"]["uid"]: pd for pd in res.pod_dicts}
    preemptions = [(v, by_uid.get(res.preemptions[v["metadata"]["uid"]][0])) for v in res.victim_dicts]
    report = check_placement(res.node_dicts, res.pod_dicts, scheduler_name=scheduler_name,
                             pod_groups=res.pod_group_dicts, preemptions=preemptions,
                             volumes=res.volume_dicts, claims=res.claim_dicts, csi_nodes=res.csi_node_dicts)
    res.check_ok = report.ok
    res.check_summary = report.summary()


def format_report(res: SimResult) -> str:
    lines = [
        f"workload          {res.workload}",
        f"nodes             {res.nodes:,}",
        f"pods              {res.pods:,}",
        f"bound             {res.bound:,}",
        f"unschedulable     {res.unschedulable:,}",
        f"preempted         {res.preempted:,}",
        f"scheduling time   {res.schedule_seconds:.3f} s (engine only; parsing {res.parse_seconds:.3f} s)",
        f"throughput        {res.pods_per_second:,.0f} pods/s wall, {res.pods_per_cpu_second:,.0f} pods per CPU-second",
        f"peak memory       {res.peak_mib:,.0f} MiB (process max RSS)",
    ]
    if res.messages:
        counts: dict[str, int] = {}
        for m in res.messages.values():
            counts[m] = counts.get(m, 0) + 1
        lines.append("unschedulable reasons:")
        for m, c in sorted(counts.items(), key=lambda x: -x[1])[:10]:
            lines.append(f"  {c:>6} x {m}")
    if res.check_summary:
        lines.append("placement check   " + ("clean" if res.check_ok else "VIOLATIONS"))
        lines.extend("  " + ln for ln in res.check_summary.splitlines())
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="run a workload file through the engine, no apiserver")
    p.add_argument("workload", help="workload YAML (the format: ../shared/workloads/FORMAT.md)")
    p.add_argument("--config", help="scheduler config YAML (default: built-in defaults)")
    p.add_argument("--no-check", action="store_true", help="skip the placement check")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from .cli import CliError
    from .config import ConfigError
    from .workload import WorkloadError

    try:
        cfg = load_config(args.config)
        wl = load_workload(args.workload)
    except (ConfigError, WorkloadError) as exc:
        raise CliError(str(exc)) from None
    res = simulate(wl, cfg.profile, keep_objects=not args.no_check, scheduler_name=cfg.profile.scheduler_name)
    res.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not args.no_check:
        run_check(res, cfg.profile.scheduler_name)
    print(format_report(res))
    return 0 if res.check_ok in (None, True) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(argparse.Namespace(workload=sys.argv[1], config=None, no_check=False)))
