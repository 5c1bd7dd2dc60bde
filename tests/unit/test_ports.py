"""Free loopback ports for the control plane and Ray nodes a test starts."""

from __future__ import annotations

import socket

from cluster_scheduler.controlplane.cluster import free_ports


def test_free_ports_are_distinct_and_free():
    # Picked one at a time, the kernel may hand the same port out twice: start_control_plane once
    # spun forever redrawing one of two equal ports. Held open together, they cannot repeat.
    for _ in range(50):
        ports = free_ports(7)
        assert len(set(ports)) == 7
        with socket.socket() as s:
            s.bind(("127.0.0.1", ports[0]))
