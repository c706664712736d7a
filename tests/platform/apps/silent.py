"""An app that never opens its port: the platform must give up after its start-up timeouts, quoting this log."""

import time

print("silent-app: {{TOKEN}} loading, and never listening", flush=True)
time.sleep(3600)
