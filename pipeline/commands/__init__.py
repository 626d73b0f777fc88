"""The `piq` command line: the entry point and the commands that are not stages."""
