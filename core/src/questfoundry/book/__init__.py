"""The book: its model (a topology of numbered sections linked by choices), the rules every book
meets, and the files a reader opens (HTML, Markdown, EPUB, Twee)."""
