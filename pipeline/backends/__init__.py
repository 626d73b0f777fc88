"""The pluggable model backends of the data stages: animators, captioners, parsers, relighters.
Each family has one interface and one registry; the paper's model and an offline default."""
