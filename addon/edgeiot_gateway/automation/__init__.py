"""Automation at the edge: schedules, templates and (later) tasks, handlers and forwards."""
