"""The assistant behind `/api/ai_execute`: chats stored per caller and namespace, each request fitted
to its model's context window (older turns dropped or summarized), and tools the server runs itself
(document search and reading) in a loop of model calls. It needs retrieval, which sits above the
gateway, so it lives here rather than in `lib/gateway/`."""
