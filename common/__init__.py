"""Code shared by the gateway, the auth service and main_api; imports none of them."""
