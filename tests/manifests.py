"""API-shaped objects for tests that talk to a real apiserver: what kubectl would send."""

from __future__ import annotations


PAUSE = "registry.k8s.io/pause:3.10"


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None) -> dict:
    """A Ready Node as a kubelet registers it (its hostname label set), with `labels` besides."""
    res = {"cpu": cpu, "memory": memory, "pods": pods}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"capacity": res, "allocatable": dict(res),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def pod(name: str, namespace: str | None = None, cpu: str | None = None, memory: str | None = None,
        scheduler: str = "nobody", node: str | None = None, labels: dict | None = None, **spec: object) -> dict:
    """A Pod with one pause container requesting `cpu` and `memory` (those given), for
    `scheduler`, bound at creation to `node` if given; any other keyword is a spec field
    (priority, nodeSelector, affinity...). Without a namespace the request's path names it."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict = {"name": "c", "image": PAUSE}
    if requests:
        container["resources"] = {"requests": requests}
    body: dict = {"schedulerName": scheduler, "containers": [container], **spec}
    if node:
        body["nodeName"] = node
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def pod_group(name: str, min_count: object = None, namespace: str | None = "default", basic: bool = False,
              **spec: object) -> dict:
    """A `scheduling.k8s.io/v1beta1` PodGroup: a gang of `min_count` (whatever value is given: tests
    of bad input give bad ones), or with `basic` the basic policy; without a namespace when
    `namespace` is None (the request's path names it)."""
    policy = {"basic": {}} if basic else {"gang": {"minCount": min_count}}
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup", "metadata": meta,
            "spec": {"schedulingPolicy": policy, **spec}}


def binding(pod_name: str, node_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod_name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


def scheduler_config(scheduler: str = "cluster-scheduler", **runtime: object) -> str:
    """A KubeSchedulerConfiguration file for `cluster-scheduler run`: one profile, and the
    `runtime` settings given (camelCase, as the file spells them)."""
    import yaml

    return yaml.safe_dump({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                           "profiles": [{"schedulerName": scheduler}], "runtime": runtime}, sort_keys=False)
