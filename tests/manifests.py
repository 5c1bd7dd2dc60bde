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


def binding(pod_name: str, node_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod_name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


def scheduler_config(scheduler: str = "cluster-scheduler", **runtime: object) -> str:
    """A KubeSchedulerConfiguration file for `cluster-scheduler run`: one profile, and the
    `runtime` settings given (camelCase, as the file spells them)."""
    import yaml

    return yaml.safe_dump({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                           "profiles": [{"schedulerName": scheduler}], "runtime": runtime}, sort_keys=False)
