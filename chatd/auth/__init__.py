"""Who a caller is (tokens) and what they may do (permissions)."""
