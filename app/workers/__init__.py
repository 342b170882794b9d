"""QObjects that live in their own QThreads and talk only through signals; no widgets here."""
