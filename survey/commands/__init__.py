"""``popeval`` subcommands of the survey component (``deploy``, ``fetch``)."""

__all__: list[str] = []
