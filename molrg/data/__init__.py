"""Data: MoLRG generation (spec section 1)."""
