"""The SmartTrees HTTP server: OGC APIs (through pygeoapi and our fast providers) and our routes."""
