"""The built-in Amazon Pay API emulator: the ASGI app, request authentication and session state."""
