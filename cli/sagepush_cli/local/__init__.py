"""The local stack: the real template on a moto server, with what moto cannot do added here and only here."""
