"""One module per ``vla-eqm`` subcommand: ``add_arguments(parser)`` and ``run(args)``."""
