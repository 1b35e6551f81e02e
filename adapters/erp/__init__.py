"""ERP adapters behind :class:`adapters.ports.ErpPort`."""
