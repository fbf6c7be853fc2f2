"""Documents in: extraction (documents/), chunking, embedding (embedders/), the document store, blobs (S3)."""
