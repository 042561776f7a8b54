"""One module per cloud: its shared resources and its servers."""
