"""The front door: routes {subdomain}.{apps domain} to running Spaces and everything else to the hub."""
