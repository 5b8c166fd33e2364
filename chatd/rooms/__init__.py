"""Room state and fan-out: who is in which order's room, and getting bytes to them.

Nothing here does I/O of its own: the hub hands encoded frames to sockets'
transports without awaiting, and the relay (chatd.relay) only calls back into it.
"""
