"""One job's story: transcribe, publish, summarize, retry."""
