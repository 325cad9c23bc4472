"""DRF and Django glue shared by the HTTP services: error envelope, request logging, health, pagination."""
