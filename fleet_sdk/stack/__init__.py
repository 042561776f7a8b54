"""A stack's config and program: the settings the SDK reads and the stack's fleet."""
