"""Getting entries: reading feeds and local article files into EntryData."""
