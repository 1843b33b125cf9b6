"""Forward-process schedules and reverse-time samplers (sections 2, 8)."""
