"""Typed clients, one per contract family, over :class:`chain.sender.Transactor`."""
