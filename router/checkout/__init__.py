"""The checkout domain: model, exactly-once service, reconciler, button signing, events, money."""
