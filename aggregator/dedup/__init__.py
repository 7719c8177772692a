"""Pure decisions over entries: copies (Articles), one event (Stories), which topic."""
