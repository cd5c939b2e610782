"""Every write that changes the books goes through these services (see README, "Architecture").

Each entry point is one durable transaction (`locks.books_transaction`) and takes the books'
locks through `fund/services/locks.py` only, in its one order: a cycle's posting lock, then the
funds (in id order), then the cycles. The module docstring there states the protocol.
"""
