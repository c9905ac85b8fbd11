"""The one place a query becomes ranked product ids (every engine uses it).

``rule``        the hybrid rule of one query: method, weights, RRF constant, kNN floor, window
``retrievers``  the retriever registry (names, the vector field each kNN reads) and their weights
``retrieve``    stage 1: the query's lists from the engine (one round trip with multi-search)
``fusion``      stage 2: rank fusion, RRF or linear (min-max / z-score), with explanations
``floor``       stage 3: membership, the kNN floor (which kNN hits count as matches)
``click_prior`` stage 5: the click prior and its rank caps
``compile``     whether a rule runs inside an engine exactly, and the request that runs it there
``pipeline``    query -> retrieve -> fuse -> membership -> re-rank -> click prior
"""
