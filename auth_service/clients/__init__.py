"""Service accounts: OAuth 2.0 clients (client credentials grant) of the auth service."""
