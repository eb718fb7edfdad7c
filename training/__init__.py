"""Training: model zoo, artifacts and their fast inference path (see ``training.models``)."""
