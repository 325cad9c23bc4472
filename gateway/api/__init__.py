"""The public HTTP API: views, authentication, permissions, throttles, cookies and CSRF."""
