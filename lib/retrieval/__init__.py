"""Questions answered: hybrid search (BM25 + vectors), filters, context packing, answers with
citations, conversations, and the rag request model."""
