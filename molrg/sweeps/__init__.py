"""Sample-complexity sweeps: grid and seeds, batched runs, transition estimates (section 7)."""
