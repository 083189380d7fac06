"""The catalog's writes, one module per area; `catalog.writer.CatalogWriter` holds them all."""
