"""The operators' web console: server-rendered pages, live updates over SSE."""
