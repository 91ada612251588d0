"""Small shared pieces at the bottom of the layers: errors, progress, text-file input and
output, rank correlation and cosines, length batching, the version. They import nothing
of ltd_bert but each other."""
