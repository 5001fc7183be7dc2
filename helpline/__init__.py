"""The helpline service: content, assistant runner, command line (and later the gateway and console)."""
