"""Integrations with other systems (Ray Data, dimos, OpenTelemetry, ...).

Each module imports the library it wraps lazily, inside the module, and the core never imports
this package: ``import vlgate`` and ``vlgate.create(...)`` load none of them.
"""
