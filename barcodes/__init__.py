"""Barcodes: code scheme, labels, decoding, scan events and the chain-of-custody rules."""
