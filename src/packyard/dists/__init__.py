"""Distribution files: their names and the core metadata inside them."""
