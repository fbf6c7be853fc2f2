"""The model chain: admission (budgets, rate limits, cache), fallbacks across providers, request
translation from the public API, and the AI SDK UI-message encoder that consumes the chain's events."""
