"""tpclaunch: start and stop a local cluster of this project's programs on loopback.

The launcher the integration tests, the fault suite, the demo and the benchmark share:
`Cluster` (replicas and participants with free ports, tokens, a cluster file, start, stop,
crash, restart, failpoints), `Participant` and `FakeReplica` for participant-only tests,
`metrics` and `wait_until`; `tpclaunch.bank` holds the bank workload and its audit.

Import it with tools/ on the module path (the scripts and ctest set PYTHONPATH=tools):

    from tpclaunch import Cluster, wait_until
"""
from .cluster import *  # noqa: F401,F403
from .cluster import __all__  # noqa: F401
