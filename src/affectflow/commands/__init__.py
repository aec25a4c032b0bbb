"""Subcommands of ``affectflow``, one module per area; each registers with :func:`affectflow.cli.command`."""
