"""Service layer shared by the web app and AI agents: the claim protocol."""
