from autocompress.cli import app

app()
