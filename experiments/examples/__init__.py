"""Examples for the README: a model of one's own and a data set of one's own."""
