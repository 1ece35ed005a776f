"""Operating the service: the metrics listener, instrumentation wrappers, signals, reload and ops settings."""
