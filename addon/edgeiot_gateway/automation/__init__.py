"""Automation at the edge: tasks, schedules, handlers and forward rules run by the gateway."""
