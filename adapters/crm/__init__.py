"""CRM adapters (implementations of ``adapters.ports.CrmPort``)."""
