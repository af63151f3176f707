"""Chat consultation: questions over a recorded consultation, what-if forks, the web page."""
