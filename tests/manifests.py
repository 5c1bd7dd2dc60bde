"""API-shaped objects for tests that talk to a real apiserver: what kubectl would send."""

from __future__ import annotations


def node(name: str) -> dict:
    res = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "pause"}]}}


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
