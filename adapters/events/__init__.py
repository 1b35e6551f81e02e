"""Business events out: the :class:`~adapters.events.port.EventsPort` and its adapters.

- :mod:`adapters.events.webhooks`: signed outbound webhooks (CloudEvents 1.0 structured JSON,
  ``X-Revsync-Signature``), one POST per subscriber.
"""
