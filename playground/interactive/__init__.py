"""A person's own task: their pictures, adapting and predicting, explanations, the export."""
