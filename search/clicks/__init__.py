"""Click feedback: impressions and clicks in, a click prior out.

``models``        impressions, clicks, discard counts, aggregates (``ClickStat``), shoppers' photo references
``services``      record impressions and clicks through the ``guards`` (bots, duplicates, rate limits)
``aggregates``    turn events into click priors with the ``click_model`` maths; purge old events
``selectors``     click priors and photo references for a query (read by :mod:`search.hybrid`)
``views``         the click endpoints; ``analytics`` and ``analytics_views`` the staff page
``simulation``    proof by simulated shoppers (``manage.py simulate_clicks``), on ``simulation_data``
"""
