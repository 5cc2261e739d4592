"""Runtime policy: retries, the background event loop behind the sync API, and (later) rate limits,
fallbacks, caching and live frame streams."""
