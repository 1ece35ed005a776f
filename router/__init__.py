"""return-router: Amazon Pay return URLs for iOS and Android apps."""
