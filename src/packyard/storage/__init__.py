"""Blob stores: where the bytes of distribution files and METADATA files live."""
