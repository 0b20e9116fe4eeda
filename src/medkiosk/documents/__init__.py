"""Documents the platform renders itself: A4 PDFs with Chinese text (invoices, requisitions, copies)."""
