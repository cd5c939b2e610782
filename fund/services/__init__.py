"""Every write that changes money goes through these services (see README, "Architecture").

Locking protocol: a write that touches a fund's ledger, takeovers, position profits or cycles
locks the fund row first (funds in id order), then the cycle rows it needs. Settlement takes
the same locks in the same order, so the two can neither deadlock nor interleave.
"""
