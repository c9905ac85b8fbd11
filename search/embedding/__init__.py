"""Embeddings: encoder access, product and query vectors, fusion spaces, fusion-head training.

``encoders`` (the process's encoders) <- ``spaces`` (which fusion space is in service) <-
``vectors`` (query and product vectors) <- ``training`` (the head training service).
"""
