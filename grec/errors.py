"""The one exception type whose message is meant for the user (the CLI prints it, no traceback)."""


class UserError(Exception):
    """Input or a request that cannot be served as given; the message names what and why."""
