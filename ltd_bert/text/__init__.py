"""Text → cleaned text → words → per-character weights: cleaning, segmentation, the IDF table
and the character weights (LTD-BERT's weighting). Above `common` only."""
