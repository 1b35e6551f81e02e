"""Billing adapters: one module per billing system, each implementing ``BillingPort``."""
