"""What the vectors are for: encoding files, evaluation, search, clustering, fine-tuning,
plots, serving. Above `student`."""
