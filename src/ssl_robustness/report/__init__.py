"""Results tables, figures and the HTML/Markdown report."""
