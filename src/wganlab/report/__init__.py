"""Reports rebuilt from run folders: the run report, image pictures, the comparison page,
the experiments report, and one plotting and HTML helper."""
