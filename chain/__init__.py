"""xcpay chain layer: compile, deploy, send signed transactions, decode errors and events.

The services and scripts reach the chain only through this package, so that the same code runs
on the in-process eth-tester chain and on any JSON-RPC node (anvil, Besu).
"""
