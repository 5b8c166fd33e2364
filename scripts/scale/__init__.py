"""The scale data set and its benchmark: replay, inbox and search over 1 M messages.

`plan` says what happens (orders, who writes what when, who reads), seeded and pure;
`words` makes the texts; `generate` writes a plan through chatd's own store (SQLite,
then copied into PostgreSQL with `chatd migrate-store`'s copy); `bench` measures a real
chatd server over the result. Run them from the checkout: `python -m scripts.scale.generate`.
"""
