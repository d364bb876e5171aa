"""The release pages: the researcher's requests (``releases``) and their downloads
(``downloads``) under a project, the output checkers' queue and review (``checking``)
under /outputs/, and the rendering of a table with its findings (``tables``)."""
