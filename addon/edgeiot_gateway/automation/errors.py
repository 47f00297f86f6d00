"""Errors of the automation package."""


class DefinitionError(ValueError):
    """A definition (task, schedule, handler call, template) that cannot be used; the message
    names the place, e.g. "actions[0].params.url: expected a URL"."""
