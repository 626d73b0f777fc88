"""Reading media: the one image reader/encoder and the one clip reader of every stage and command."""
