"""Who is calling the web app, and what they may do: sessions, bearer tokens, access rules, CSRF."""
