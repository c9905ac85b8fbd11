"""REST API of the catalog: products, their photos, indexing state, bulk upload, tokens."""
