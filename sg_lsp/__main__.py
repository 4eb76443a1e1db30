"""`python -m sg_lsp --stdio`: same as the `sg-lsp` entry point."""

from .cli import main

if __name__ == "__main__":
    main()
