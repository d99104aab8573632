"""Everything that speaks HTTP to Canvas."""
