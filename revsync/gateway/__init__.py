"""HTTP intake (webhooks) for revsync."""
