"""Index backends other than the embedded SQLite + hnswlib one: each maps sg's candidates and fusion inputs onto
an external engine, so the ranking code never knows which one runs."""
