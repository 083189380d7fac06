"""Alerts: conditions and events that an operator must hear about, and the channels to them."""
