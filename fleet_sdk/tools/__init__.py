"""One module per external program, each running its commands through a Runner that is passed in."""
