"""Tables, database sessions, response views and the permission engine."""
