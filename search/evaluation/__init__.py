"""Relevance harness: nDCG@10, MRR@10 and recall@100 of the storefront's ranking on judged data.

``datasets`` reads the judged sets (CrowdFlower text queries, Grocery photos, fashion text to
photo), ``encoders`` computes and caches their embeddings, ``systems`` indexes each catalog in a
throwaway embedded engine and ranks with the storefront's own retrieval and fusion
(``search.hybrid.pipeline.search_rankings`` + ``rankings_blend``), ``metrics`` scores the runs with
ranx, ``report`` prints, saves and charts the results. Entry point: ``manage.py evaluate``.
"""
