"""One loader per file type (Markdown, text, PDF, HTML, notebooks) and a dispatcher that picks one."""
