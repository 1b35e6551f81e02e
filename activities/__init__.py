"""Temporal activities: each binds one saga step to a port and turns vendor failures into
retry semantics through :mod:`activities.classify`."""
