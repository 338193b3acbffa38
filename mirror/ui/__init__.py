"""The web UI at `/ui/`: server-rendered pages over the same service layer as the API (the access
control, the exception workflow, the audit reads), so every rule of the API holds here too."""
