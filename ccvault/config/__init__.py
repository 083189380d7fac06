"""The configuration: one validated model (`model`), how a file becomes it (`loading`),
passwords and credentials (`secrets`), and the example config generated from it (`example`)."""
