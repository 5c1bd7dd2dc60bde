"""cluster-scheduler: a Kubernetes scheduler for very large clusters, built on Ray.

Data flow: informer (api/) -> queue -> partitions (actors/partition.py, engine.py over
model/node_table.py) -> coordinator (actors/coordinator.py, ledger) -> binder (api/binder.py).
"""

__version__ = "0.1.0"
