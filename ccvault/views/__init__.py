"""Read models that the CLI, the API and the web page share: search, status, the health
snapshot, and the JSON objects (`models`) they are shown as."""
