"""The relay between chatd instances: pub/sub of encoded frames, presence and
connection admission across instances (`base`: the contracts; `local`: one
process; `redis`: several, over Redis).
"""
