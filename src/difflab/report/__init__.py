"""Interactive HTML pages (Plotly, with plotly.js embedded: they open with no network).

:func:`difflab.report.run_page.write_report` writes one page per run (``difflab report``): the forward and reverse
process and the field −ε̂ under t sliders (:mod:`.process`), samples against data with densities and the loss
(:mod:`.points`), the metrics with their noise floors. :func:`difflab.report.results.write_results_page` writes a
sweep's results.html. :mod:`.html` assembles the pages. Nothing is imported here, so that ``difflab report --help``
(:mod:`.cli`) answers without loading Plotly.
"""
