"""CLI commands, one module each (see semsmooth_core/cli.py for the contract)."""
