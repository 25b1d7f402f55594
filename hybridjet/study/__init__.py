"""Learning curves of every method against the training size, and the controls that tell what the pretrained LLM
adds: ``hybridjet study -c configs/study_demo.yaml``."""
