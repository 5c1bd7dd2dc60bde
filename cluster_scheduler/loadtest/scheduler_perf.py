"""Upstream's scheduler_perf suite as workloads: `loadtest --scheduler-perf SUITE/CASE/WORKLOAD`.

The suite is read where building the control plane put it: the `k8s.io/kubernetes` module of the
release we build, in the Go module cache (`test/integration/scheduler_perf/**/performance-config.yaml`
and its templates); nothing of it is copied into the project. Each (test case, workload) becomes a
`Workload` with upstream's meaning (docs/benchmarks.md lists the translation): nodes from the node
template or upstream's default node, `labelNodePrepareStrategy` round-robin over the op's nodes,
pods from their Go templates per index (with the `signature` label upstream adds), each
createPods op waited for unless `skipWaitToCompletion`, and only the pods of `collectMetrics` ops
(or of a `startCollectingMetrics` window) timed; `createPodSets` unrolled into its createPods ops;
PV and PVC templates as a volume and claim per pod written bound, as upstream writes them (no PV
controller), named as upstream names them (`pvc-<i>`, `<namespace>-vol-<i>`: other pods'
templates refer to them), each volume its own disk;
`nodeAllocatableStrategy` as allocatable on every node plus a CSINode per node. What a case needs
`deletePods` and `churn` as the load test's own background ops (workload.DeletePods, Churn), `updateAny`
as a PUT of each object and then of its status (workload.UpdateObjects). What a
case needs that we do not implement (DRA, ...) is its `reason`: it is listed, never run half-translated.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import yaml

from cluster_scheduler.loadtest import gotemplate
from cluster_scheduler.resources import resource_path
from cluster_scheduler.workload import (Barrier, Churn, CreateNodes, CreateObjects, CreatePods, DeletePods,
                                        UpdateObjects, Workload, load_yaml)

SUITE = "test/integration/scheduler_perf"
# Gates that change how fast kube-scheduler works, not what it decides: a case that sets them runs
# (our peer runs with the release's defaults; the report says so)
PERFORMANCE_GATES = frozenset({"SchedulerAsyncAPICalls", "SchedulerAsyncPreemption", "OpportunisticBatching"})
# Gates on in the control plane both schedulers run against: GA ones locked on in 1.37, and the
# PodGroup API (GenericWorkload) with its topology constraints that controlplane/cluster.py enables
ENABLED_GATES = frozenset({"GenericWorkload", "TopologyAwareWorkloadScheduling", "NodeInclusionPolicyInPodTopologySpread",
                           "InPlacePodVerticalScaling", "NodeDeclaredFeatures"})
# upstream's node when createNodes has no template (makeBaseNode)
BASE_NODE = {"status": {"capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"},
                        "allocatable": {"pods": "110", "cpu": "4", "memory": "32Gi"},
                        "conditions": [{"type": "Ready", "status": "True"}]}}
# upstream's pod when neither the op nor the case names a template (makeBasePod)
BASE_POD = {"metadata": {"generateName": "pod-"},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.2",
                                     "ports": [{"containerPort": 80}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "500Mi"},
                                                   "limits": {"cpu": "100m", "memory": "500Mi"}}}]}}


class NotRunnable(Exception):
    """Why a case cannot run here (a feature we do not implement, an op we do not translate)."""


@dataclass
class PerfCase:
    """One workload of one test case of one suite file."""

    id: str  # SUITE/CASE/WORKLOAD, SUITE being the config's folder under scheduler_perf
    labels: tuple[str, ...]
    threshold: Any  # pods/s upstream holds kube-scheduler to (a number or {topic: number}); None: none
    feature_gates: dict[str, bool]
    workload: Workload | None = None
    reason: str = ""  # why it cannot run ('' when it can)
    notes: list[str] = field(default_factory=list)

    @property
    def performance(self) -> bool:
        return "performance" in self.labels


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version the control plane is built from (its go.mod)."""
    gomod = resource_path("scripts/controlplane/k8s/go.mod").read_text()
    m = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", gomod, re.M)
    if not m:
        raise RuntimeError("k8s.io/kubernetes not found in the control plane's go.mod")
    return m.group(1)


def suite_root() -> Path:
    """scheduler_perf in the Go module cache (downloaded with the control plane's build)."""
    version = kubernetes_version()
    env = dict(os.environ, GOTOOLCHAIN="local")
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, env=env,
                           check=True).stdout.strip()
    root = Path(cache) / f"k8s.io/kubernetes@{version}" / SUITE
    if not root.is_dir():
        subprocess.run(["go", "mod", "download", f"k8s.io/kubernetes@{version}"], env=env, cwd="/",
                       capture_output=True, check=False)
    if not root.is_dir():
        raise RuntimeError(f"{root} not found: build the control plane first (scripts/build-controlplane.sh)")
    return root


def load_cases(root: Path | None = None, only: str | None = None, translate: bool = True) -> list[PerfCase]:
    """Every (test case, workload) of every performance-config.yaml, translated where we can (with
    `only`, that case alone; with `translate=False`, none: translating all 267 takes seconds)."""
    root = root or suite_root()
    out: list[PerfCase] = []
    for config in sorted(root.rglob("performance-config.yaml")):
        suite = str(config.parent.relative_to(root))
        for tc in load_yaml(config.read_text()) or []:
            for w in tc.get("workloads") or []:
                labels = tuple(dict.fromkeys([*(tc.get("labels") or []), *(w.get("labels") or [])]))
                gates = {**(tc.get("featureGates") or {}), **(w.get("featureGates") or {})}
                case = PerfCase(f"{suite}/{tc['name']}/{w['name']}", labels, w.get("threshold"), gates)
                out.append(case)
                if not translate or (only is not None and case.id != only):
                    continue
                try:
                    case.workload = _translate(case, tc, w, config.parent)
                except (NotRunnable, gotemplate.Unsupported) as exc:
                    case.reason = str(exc)
    return out


def find_case(case_id: str, root: Path | None = None) -> PerfCase:
    cases = load_cases(root, only=case_id)
    for c in cases:
        if c.id == case_id:
            return c
    near = [c.id for c in cases if case_id.split("/")[-1] in c.id][:5]
    raise KeyError(f"no scheduler_perf case {case_id!r}" + (f"; did you mean {', '.join(near)}?" if near else ""))


# ---- translation ------------------------------------------------------------------------------

class _Params:
    """A workload's params; `$name` references resolved, the unused ones reported (upstream fails)."""

    def __init__(self, params: dict[str, Any]):
        self.params, self.used = dict(params or {}), set()

    def ref(self, value: Any, what: str) -> Any:
        if not (isinstance(value, str) and value.startswith("$")):
            return value
        name, _, default = value[1:].partition("|")
        if name in self.params:
            self.used.add(name)
            return self.params[name]
        if "|" in value:
            return load_yaml(default) if default else None
        raise NotRunnable(f"{what}: parameter {name!r} is not set")

    def count(self, op: dict[str, Any], default: int = 0) -> int:
        n = op.get("count", default)
        if "countParam" in op:
            n = self.ref(op["countParam"], "countParam")
        if "countMultiplierParam" in op:
            n = n * self.ref(op["countMultiplierParam"], "countMultiplierParam")
        return int(n)

    def template_params(self, op: dict[str, Any]) -> dict[str, Any]:
        return {k: self.ref(v, f"templateParams.{k}") for k, v in (op.get("templateParams") or {}).items()}


_UNSUPPORTED_OPS = {
    "sleep": "sleep",
    "createResourceClaims": "DRA (ResourceClaims)",
    "allocResourceClaims": "DRA (ResourceClaims)",
    "startCollectingProfile": "CPU profiles",
    "stopCollectingProfile": "CPU profiles",
}


def _translate(case: PerfCase, tc: dict, w: dict, here: Path) -> Workload:
    for gate, on in case.feature_gates.items():
        if gate in PERFORMANCE_GATES:
            case.notes.append(f"feature gate {gate}={on} is about kube-scheduler's speed: both run the release's default")
        elif gate in ENABLED_GATES and on:
            continue
        elif gate.startswith("DRA") or gate == "DynamicResourceAllocation":
            raise NotRunnable(f"DRA (feature gate {gate})")
        else:
            raise NotRunnable(f"feature gate {gate}={on}")
    profile = _scheduler_profile(here, tc["schedulerConfigPath"]) if tc.get("schedulerConfigPath") else None
    params = _Params(w.get("params") or {})
    ops: list[Any] = []
    collecting: _Window | None = None
    node_total = 0
    waited: dict[str, int] = {}  # namespace -> pods of the createPods ops waited for so far
    name = re.sub(r"[^a-z0-9-]+", "-", f"sp-{tc['name']}-{w['name']}".lower()).strip("-")[:50].strip("-")
    for index, op in enumerate(_unroll(tc.get("workloadTemplate") or [], params)):
        code = op.get("opcode")
        if code in _UNSUPPORTED_OPS:
            raise NotRunnable(f"op {code}: {_UNSUPPORTED_OPS[code]}")
        if code == "createNodes":
            ops.append(_nodes(op, params, here, node_total))
            node_total += ops[-1].count
        elif code == "createNamespaces":
            ops.append(_namespaces(op, params, here))
        elif code == "createPods":
            ops += _pods(op, index, params, tc, here, collecting, waited)
        elif code == "createAny":
            ops.append(CreateObjects(tuple(_objects(op, params, here))))
        elif code == "createPodGroups":
            ops.append(CreateObjects(tuple(_pod_groups(op, params, here))))
        elif code == "deletePods":
            ops.append(DeletePods(namespace=op["namespace"], labels=dict(op.get("labelSelector") or {}),
                                  rate=float(op.get("deletePodsPerSecond") or 0),
                                  wait=not op.get("skipWaitToCompletion")))
        elif code == "churn":
            ops.append(_churn(op, index, here))
        elif code == "barrier":
            stage = op.get("stageRequirement") or "Scheduled"
            if stage not in ("Scheduled", "Attempted"):
                raise NotRunnable(f"barrier stageRequirement {stage!r}")
            ops.append(Barrier(until_bound=stage == "Scheduled", namespaces=tuple(op.get("namespaces") or ()),
                               labels=dict(op.get("labelSelector") or {})))
        elif code == "updateAny":
            ops.append(_updates(op, params, here))
        elif code == "startCollectingMetrics":
            collecting = _Window(frozenset(op.get("namespaces") or ()), dict(op.get("labelSelector") or {}))
        elif code == "stopCollectingMetrics":
            collecting = None
        else:
            raise NotRunnable(f"op {code!r}")
    unused = sorted(set(params.params) - params.used)
    if unused:
        # upstream fails such a workload; params only Go hooks read are the usual cause
        raise NotRunnable(f"parameters {', '.join(unused)} are read by upstream's Go code, not by its ops")
    if not any(isinstance(o, CreatePods) and o.measure for o in ops):
        raise NotRunnable("no pods are measured")
    return Workload(name, ops, source=f"scheduler_perf {case.id}", scheduler_profile=profile)


def _scheduler_profile(here: Path, path: str) -> dict[str, Any]:
    """A case's own KubeSchedulerConfiguration, as the one profile both schedulers are given
    (each under its own schedulerName): runnable if it has one profile and nothing else our
    configuration cannot express."""
    from cluster_scheduler.config import ConfigError, parse_profile

    try:
        doc = load_yaml(_read(here, path))
    except (OSError, yaml.YAMLError) as exc:
        raise NotRunnable(f"scheduler configuration {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "KubeSchedulerConfiguration":
        raise NotRunnable(f"scheduler configuration {path}: not a KubeSchedulerConfiguration")
    other = sorted(set(doc) - {"apiVersion", "kind", "profiles"})
    if other:
        raise NotRunnable(f"scheduler configuration {path}: {', '.join(other)}")
    profiles = doc.get("profiles") or [{}]
    if len(profiles) != 1:
        raise NotRunnable(f"scheduler configuration {path}: {len(profiles)} profiles")
    try:
        parse_profile(profiles[0])
    except ConfigError as exc:
        raise NotRunnable(f"scheduler configuration {path}: {exc}") from None
    return profiles[0]


def _unroll(template: list[dict], params: _Params) -> list[dict]:
    """createPodSets as the createPods ops it stands for, one per namespace `<prefix>-<i>`, as
    upstream unrolls it before running (so it shifts the index, and the default namespace, of
    the ops after it)."""
    out: list[dict] = []
    for op in template:
        if op.get("opcode") == "createPodSets":
            inner = dict(op.get("createPodsOp") or {})
            out += [{**inner, "opcode": "createPods", "namespace": f"{op['namespacePrefix']}-{i}"}
                    for i in range(params.count(op))]
        else:
            out.append(op)
    return out


def _read(here: Path, path: str) -> str:
    return (here / path).read_text()


def _render(text: str, env: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return load_yaml(gotemplate.render(text, env))
    except yaml.YAMLError as exc:
        raise NotRunnable(f"{what}: rendered template is not YAML: {exc}") from None


def _static(text: str) -> bool:
    return "{{" not in text


def _nodes(op: dict, params: _Params, here: Path, offset: int) -> CreateNodes:
    count = params.count(op)
    per_node: list[dict[str, Any]] = []
    if op.get("nodeTemplatePath"):
        text = _read(here, op["nodeTemplatePath"])
        env = {"Count": count, **params.template_params(op)}
        template = _render(text, {"Index": 0, **env}, op["nodeTemplatePath"])
        if not _static(text):  # rendered for each node, .Index counting the op's nodes from 0
            per_node = [template] + [_render(text, {"Index": i, **env}, op["nodeTemplatePath"])
                                     for i in range(1, count)]
    else:
        template = orjson.loads(orjson.dumps(BASE_NODE))
    # a template that names its nodes keeps the names (upstream's node preparer does, and later
    # ops refer to them); one with only a generateName is named by the workload
    names = [(t.get("metadata") or {}).get("name") for t in per_node or [template] * count]
    if not all(names):
        names = []
    elif len(set(names)) < len(names):
        raise NotRunnable(f"one node name for {count} nodes ({op['nodeTemplatePath']})")
    for t in per_node or [template]:  # (the hostname label follows the name)
        t.pop("apiVersion", None)
        t.pop("kind", None)
        (t.get("metadata") or {}).pop("generateName", None)
        (t.get("metadata") or {}).pop("name", None)
    rr: dict[str, list[str]] = {}
    if s := op.get("labelNodePrepareStrategy"):
        # round robin over the op's nodes in name order (ours are named in creation order)
        # (ours assign values[i % n] by global node index i: rotate so the op's first node gets the first)
        values = list(s["labelValues"])
        rr[s["labelKey"]] = [values[(j - offset) % len(values)] for j in range(len(values))]
    if s := op.get("uniqueNodeLabelStrategy"):
        raise NotRunnable("uniqueNodeLabelStrategy")
    csi_node = None
    if s := op.get("nodeAllocatableStrategy"):
        # allocatable patched onto every node (the apiserver defaults it to the capacity first)
        for t in per_node or [template]:
            status = t.setdefault("status", {})
            status["allocatable"] = {**(status.get("allocatable") or status.get("capacity") or {}),
                                     **{k: str(v) for k, v in (s.get("nodeAllocatable") or {}).items()}}
        # and a CSINode per node with each driver's attach limit and the migrated plugins
        csi_node = {"metadata": {"annotations": {"storage.alpha.kubernetes.io/migrated-plugins":
                                                 ",".join(s.get("migratedPlugins") or ())}},
                    "spec": {"drivers": [{"name": d, "allocatable": a} for d, a in
                                         (s.get("csiNodeAllocatable") or {}).items()]}}
    return CreateNodes(count=count, template=template, round_robin_labels=rr, csi_node=csi_node,
                       per_node=tuple(per_node), names=tuple(names))


def _namespaces(op: dict, params: _Params, here: Path) -> CreateObjects:
    template = load_yaml(_read(here, op["namespaceTemplatePath"])) if op.get("namespaceTemplatePath") else {}
    objs = []
    for i in range(params.count(op)):
        ns = orjson.loads(orjson.dumps(template))
        ns.setdefault("metadata", {})["name"] = f"{op['prefix']}-{i}"
        objs.append({"apiVersion": "v1", "kind": "Namespace", **{k: v for k, v in ns.items() if k not in ("apiVersion", "kind")}})
    return CreateObjects(tuple(objs))


@dataclass(frozen=True)
class _Window:
    """A startCollectingMetrics window: the pods it times (upstream's throughput collector counts
    the pods of these namespaces, if any, whose labels match the selector)."""

    namespaces: frozenset[str]
    labels: dict[str, str]

    def times(self, namespace: str, labels: dict[str, str]) -> bool:
        return ((not self.namespaces or namespace in self.namespaces)
                and all(labels.get(k) == v for k, v in self.labels.items()))


def _pods(op: dict, index: int, params: _Params, tc: dict, here: Path, collecting: _Window | None,
          waited: dict[str, int]) -> list[Any]:
    claim_t = volume_t = None
    if op.get("persistentVolumeClaimTemplatePath") or op.get("persistentVolumeTemplatePath"):
        if not (op.get("persistentVolumeClaimTemplatePath") and op.get("persistentVolumeTemplatePath")):
            raise NotRunnable("a PersistentVolumeClaim template without a PersistentVolume template, or the reverse")
        # each pod's claim and its own volume, pre-bound to each other, before the pod
        claim_t, volume_t = (_render(_read(here, op[k]), {}, op[k]) for k in
                             ("persistentVolumeClaimTemplatePath", "persistentVolumeTemplatePath"))
        for t in (claim_t, volume_t):
            t.pop("apiVersion", None)
            t.pop("kind", None)
    if op.get("steadyState") or op.get("steadyStateParam"):
        raise NotRunnable("steadyState pods (deleted and re-created as they bind)")
    count = params.count(op)
    namespace = op.get("namespace") or f"namespace-{index}"
    path = op.get("podTemplatePath") or tc.get("defaultPodTemplatePath")
    tparams = params.template_params(op)
    batch = int(params.ref(op["signatureBatchSizeParam"], "signatureBatchSizeParam")) if "signatureBatchSizeParam" in op \
        else int(op.get("signatureBatchSize", 1))
    per_pod: Callable[[int], dict] | None = None
    if path:
        text = _read(here, path)

        def make(i: int, text=text, path=path) -> dict:
            pod = _render(text, {"Index": i, "Count": count, **tparams}, path)
            pod.setdefault("metadata", {}).setdefault("labels", {})["signature"] = f"signature-label-{i // batch}"
            return pod

        first = make(0)
        if _static(text):  # the same pod every time but for the signature: copy, don't re-parse
            blob = orjson.dumps(first)

            def make(i: int, blob=blob) -> dict:
                pod = orjson.loads(blob)
                pod["metadata"]["labels"]["signature"] = f"signature-label-{i // batch}"
                return pod

        per_pod = None if _static(text) and batch >= count else make
    else:
        first = orjson.loads(orjson.dumps(BASE_POD))
    meta = first.get("metadata") or {}
    if meta.get("name") and per_pod is None and count > 1:
        raise NotRunnable(f"one pod name for {count} pods ({path})")
    generate = meta.get("generateName") or (re.sub(r"\d+$", "", meta.get("name", "")) or "pod-")
    for key in ("apiVersion", "kind"):
        first.pop(key, None)
    measure = bool(op.get("collectMetrics")) or (collecting is not None and
                                                 collecting.times(namespace, meta.get("labels") or {}))
    out: list[Any] = [CreatePods(count=count, namespace=namespace, generate_name=generate, rate=0.0,
                                 template=first, measure=measure, per_pod=per_pod, claim_template=claim_t,
                                 volume_template=volume_t, disk_named_after_volume=volume_t is not None,
                                 claim_name="pvc-{index}", volume_name="{namespace}-vol-{index}",
                                 written_bound=volume_t is not None)]
    if not op.get("skipWaitToCompletion"):
        # upstream waits until its namespace has as many scheduled pods as the waited-for ops put there
        waited[namespace] = waited.get(namespace, 0) + count
        out.append(Barrier(until_bound=True, namespaces=(namespace,), at_least=waited[namespace]))
    return out


def _churn(op: dict, index: int, here: Path) -> Churn:
    mode = op.get("mode")
    if mode not in ("create", "recreate"):
        raise NotRunnable(f"churn mode {mode!r}")
    templates = []
    for path in op.get("templatePaths") or ():
        text = _read(here, path)
        if not _static(text):
            raise NotRunnable(f"a churn template with Go template actions ({path})")
        templates.append(load_yaml(text))
    return Churn(mode=mode, number=int(op.get("number") or 0),
                 interval=float(op.get("intervalMilliseconds") or 500) / 1000.0,
                 templates=tuple(templates), namespace=op.get("namespace") or f"namespace-{index}")


def _objects(op: dict, params: _Params, here: Path) -> list[dict]:
    text = _read(here, op["templatePath"])
    count = params.count(op, 1)
    objs = []
    for i in range(count):
        obj = _render(text, {"Index": i, "Count": count, **params.template_params(op)}, op["templatePath"])
        if op.get("namespace"):
            obj.setdefault("metadata", {})["namespace"] = op["namespace"]
        objs.append(obj)
    return objs


def _updates(op: dict, params: _Params, here: Path) -> UpdateObjects:
    """updateAny's objects are rendered as createAny's are."""
    return UpdateObjects(tuple(_objects(op, params, here)), rate=float(op.get("updatePerSecond") or 0),
                         subresources=tuple(op.get("subresources") or ()))


def _pod_groups(op: dict, params: _Params, here: Path) -> list[dict]:
    text = _read(here, op["templatePath"])
    objs = []
    for i in range(params.count(op, 1)):
        obj = _render(text, {"Index": i, **params.template_params(op)}, op["templatePath"])
        obj["apiVersion"] = "scheduling.k8s.io/v1beta1"  # upstream creates them with the v1beta1 client
        obj.setdefault("metadata", {})["namespace"] = op["namespace"]
        objs.append(obj)
    return objs


def format_list(cases: list[PerfCase], performance_only: bool = False) -> str:
    rows = [c for c in cases if c.performance or not performance_only]
    width = max((len(c.id) for c in rows), default=10)
    lines = [f"{'case':<{width}}  perf  threshold  runnable"]
    for c in rows:
        thr = "" if c.threshold in (None, 0) else str(c.threshold)
        lines.append(f"{c.id:<{width}}  {'yes' if c.performance else '   '}   {thr:>9}  "
                     + ("yes" if c.workload is not None else f"no: {c.reason}"))
    ok = sum(1 for c in rows if c.workload is not None)
    lines.append(f"{ok} of {len(rows)} runnable")
    return "\n".join(lines)


def results_table(runs: list[tuple[str, Path]], thresholds: dict[str, Any]) -> str:
    """A markdown table of side-by-side scheduler_perf runs: (case id, loadtest output folder), with
    upstream's threshold of each case id."""
    import json

    lines = ["| case | upstream threshold | kube-scheduler pods/s | ours pods/s | ours / kube | ceiling pods/s | "
             "ours / ceiling | p99 kube (s) | p99 ours (s) | bound / unschedulable (kube, ours) | placement check |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case_id, out in runs:
        path = out / "report.json"
        if not path.is_file():
            lines.append(f"| {case_id} | {thresholds.get(case_id) or ''} | run failed: no report | | | | | | | | |")
            continue
        rep = json.loads(path.read_text())
        k, o = rep["runs"].get("kube-scheduler", {}), rep["runs"].get("ours", {})
        ratios = rep.get("ratios") or {}
        ratio = ratios.get("ours_over_kube_scheduler", {}).get("pods_per_s")
        of_ceiling = (ratios.get("pods_per_s_fraction_of_ceiling") or {}).get("ours")

        def f(run: dict, *path: str) -> str:
            v: Any = run
            for p in path:
                v = (v or {}).get(p)
            return "" if v is None else f"{v:g}"

        checks = ", ".join("OK" if (r.get("check") or {}).get("ok") else "FAILED" for r in (k, o) if r)
        lines.append(f"| {case_id} | {thresholds.get(case_id) or ''} | {f(k, 'pods_per_s')} | {f(o, 'pods_per_s')} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} | {f(rep['runs'].get('ceiling', {}), 'pods_per_s')} | "
                     f"{'' if of_ceiling is None else f'{of_ceiling:.0%}'} | "
                     f"{f(k, 'latency_s', 'p99')} | {f(o, 'latency_s', 'p99')} | "
                     f"{f(k, 'bound')}/{f(k, 'unschedulable')}, {f(o, 'bound')}/{f(o, 'unschedulable')} | {checks} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m cluster_scheduler.loadtest.scheduler_perf table DIR`: the table of the runs under
    DIR (one folder per case, named with the case id's '/' as '_'); `... performance`: the ids of
    the runnable performance cases, one per line."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["performance"]:
        print("\n".join(c.id for c in load_cases() if c.performance and c.workload is not None))
        return 0
    if args[:1] == ["table"] and len(args) == 2:
        cases = load_cases(translate=False)
        ids = {c.id.replace("/", "_"): c.id for c in cases}
        runs = [(ids[d.name], d) for d in sorted(Path(args[1]).iterdir()) if d.is_dir() and d.name in ids]
        print(results_table(runs, {c.id: c.threshold for c in cases}))
        return 0
    print(main.__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
