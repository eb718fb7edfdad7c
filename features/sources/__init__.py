"""Source adapters: each turns one kind of exchange data into canonical bars (``features.schema``)."""
