"""``python -m har`` runs the same CLI as the ``har`` console script."""

from cli import main

if __name__ == "__main__":
    main()
