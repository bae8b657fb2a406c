"""The pipeline half: the typed experiment plan and everything that reads it (renderers, results, tables, claims, figures, report)."""
