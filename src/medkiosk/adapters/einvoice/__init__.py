"""The fiscal e-invoice platform (财政电子票据): its port and HTTP adapter (docs/simulators/einvoice.md)."""
