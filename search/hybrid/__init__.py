"""The one place a query becomes ranked product ids (every engine uses it).

``retrievers``  the retriever registry (names, the vector field each kNN reads) and their weights
``floor``       the kNN floor: which kNN hits count as matches
``fusion``      rank fusion: RRF, linear (min-max / z-score), with explanations
``click_prior`` the click prior and its rank caps
``pipeline``    query -> retrievers -> fusion -> floor -> click prior
"""
