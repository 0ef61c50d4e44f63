"""Node processes for tests: the project's one implementation lives in :mod:`chain.processes`."""

from chain.processes import ANVIL, anvil_cmd, anvil_node, free_port, running, wait_for_rpc

__all__ = ["ANVIL", "anvil_cmd", "anvil_node", "free_port", "running", "wait_for_rpc"]
