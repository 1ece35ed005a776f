"""The HTTP edge: routing (pure), return flows, the merchant/app API, pages, association files, demo."""
