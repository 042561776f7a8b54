"""What a reviewer reads: the `fleet plan` document and its text."""
