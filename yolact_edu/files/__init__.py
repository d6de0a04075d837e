"""Files without losing one: atomic writes, the output-folder ledger that keeps a user's files
safe, and resumable downloads (the only code that touches the network)."""
