"""Server-rendered pages of the marketplace, an HTTP client of the gateway's JSON API."""
