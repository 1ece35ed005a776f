"""Build, parse, validate and match Apple app-site-association and Android assetlinks files."""
