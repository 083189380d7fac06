"""Retention: decide (planner, pure), select (candidates, SQL), act (executor, intents)."""
